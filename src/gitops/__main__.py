"""`python -m gitops`: the same CLI as the `gitops` console script."""

from gitops.cli import main

main()
