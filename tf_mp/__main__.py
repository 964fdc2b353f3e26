"""`python -m tf_mp` = the `tf-mp` command line."""

from tf_mp.cli import console_main

console_main()
