"""Deploy a release to one stage and verify that what runs is exactly what it says."""
