"""Moving releases between environment repositories: publish, approve, promote, roll back."""
