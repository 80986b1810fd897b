"""YAMNet in Keras 3: front end, network, weights, export and handle resolution."""
