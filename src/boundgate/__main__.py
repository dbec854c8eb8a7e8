from boundgate.cli import main

main()
