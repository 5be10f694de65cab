"""The edge: HTTP routes, authentication, wire decoding; hands Commands to shards."""
