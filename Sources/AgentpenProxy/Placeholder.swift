// The SNI proxy and DNS responder live here.
