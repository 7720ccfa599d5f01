"""The HTTP edge: request context, body limit, error handlers, client address, logging."""
