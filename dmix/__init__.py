"""dmix: the `dmix` command line, joining the packages' sub-commands."""
