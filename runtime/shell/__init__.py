"""The vos shell: pipelines of virtual processors joined by bounded buffers."""
