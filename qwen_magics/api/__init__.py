"""The wire: parameters, the request, SSE decoding, the Response and the HTTP clients. No notebook here."""
