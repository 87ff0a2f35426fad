"""The API server: validates, defaults and stores objects; the only etcd client."""
