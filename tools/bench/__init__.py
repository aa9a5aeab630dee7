"""``make bench``: chatledger against LangChain, measured in the same run on the same machine.

Run ``python -m tools.bench`` (``--only GROUP``, ``--quick``); see ``__main__`` for the groups.
"""
