"""What a run keeps: the state store, the remote index, the result lines."""
