"""The demos: `runner` (the stages run in-process, reused on rerun, and the tables under them), `image`
(`mmreason demo`, `make demo`) and `nep` (`mmreason nep demo`, `make nep-demo`)."""
