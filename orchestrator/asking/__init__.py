"""Operations asked of the leading controller: the request an operator's `sitectl`
writes, the answer the controller writes back, and where both live in ZooKeeper."""
