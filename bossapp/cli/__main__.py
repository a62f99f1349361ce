from bossapp.cli import main

main()
