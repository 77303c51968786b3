"""The release: render the source into one content-addressed directory, load and diff it."""
