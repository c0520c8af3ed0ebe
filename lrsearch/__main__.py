from lrsearch.cli import main

main()
