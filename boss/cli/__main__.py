from boss.cli import main

main()
