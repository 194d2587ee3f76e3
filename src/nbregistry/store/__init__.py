"""Storage: Delta tables, artifact blobs and object-store access. The only deltalake importer."""

from .blobs import BlobStore
from .eventlog import CommitConflict, EventLog
from .location import Location, normalize_uri
from .monitoring import MonitoringTables, MonitorTable, monitoring_tables
from .seals import check_seal, check_seals, seal
from .snapshot import FileCache, Snapshot
from .tables import delta_version, read_table, write_table

__all__ = ["BlobStore", "CommitConflict", "EventLog", "FileCache", "Location", "MonitorTable",
           "MonitoringTables", "Snapshot", "check_seal", "check_seals", "delta_version",
           "monitoring_tables", "normalize_uri", "read_table", "seal", "write_table"]
