"""Storage: Delta tables, artifact blobs and object-store access. The only deltalake importer."""

from .blobs import BlobStore
from .eventlog import CommitConflict, EventLog
from .location import Location, normalize_uri
from .tables import delta_version, write_table

__all__ = ["BlobStore", "CommitConflict", "EventLog", "Location", "delta_version", "normalize_uri",
           "write_table"]
