"""One module per resource: the handlers of the routes of `jobq.http.table`. A handler gets
its parameters and body already parsed (`Call`), calls `jobq.core`, and renders the answer."""
