"""The Beam embedding component: audio clips to per-patch YAMNet tf.Examples."""
