"""TF-Serving-compatible local gRPC server and the prediction client."""
