"""The stages on a Dask cluster: the client side, the task that runs a stage on a remote worker, and
`ocrpipe worker`.
Imports everything below it up to engine/.
"""
