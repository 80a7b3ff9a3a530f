from lcstats.cli import entry

entry()
