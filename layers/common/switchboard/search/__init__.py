"""Message search: the text pipeline (``text``), the index table (``index``), the stream
indexer that maintains it (``indexer``), ranking (``ranking``) and ``message:search``
(``service``). The design and its costs: docs/search.md."""
