from corral.cli.app import main

main()
