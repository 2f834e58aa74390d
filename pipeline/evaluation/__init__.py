"""How models are judged: the splits, the protocols, the champion rule, forward evaluation of published lists."""
