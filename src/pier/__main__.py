from pier.cli import main

main()
