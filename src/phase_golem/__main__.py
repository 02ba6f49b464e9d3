from phase_golem.cli.app import run

run()
