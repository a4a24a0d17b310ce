"""One module per resource: parse the request, call `jobq.core`, render the answer."""
