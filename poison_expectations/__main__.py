from poison_expectations.apps.cli import main

main(prog_name="poison-check")
