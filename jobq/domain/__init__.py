"""The domain model, the bottom layer: job keys, states, positions, the rules of state
changes and the records that pass between the queue service and storage. Pure values and
functions: it imports nothing of jobq but `jobq.errors`."""
