"""Writes a MaxMind DB in MaxMind's nested GeoIP2-City layout with PyPI's
mmdb-writer (an implementation independent of the Rust reader), for the DNS
authority's GeoIP tests.

usage: write_city.py OUT.mmdb '[["cidr", latitude, longitude, "CC"], ...]'
"""

import json
import sys

from mmdb_writer import MMDBWriter, MmdbF64
from netaddr import IPSet


def main() -> None:
    out, spec = sys.argv[1], json.loads(sys.argv[2])
    writer = MMDBWriter(
        ip_version=6,
        database_type="GeoLite2-City",
        languages=["en"],
        description={"en": "Meridian test database"},
        ipv4_compatible=True,
    )
    for cidr, latitude, longitude, country in spec:
        writer.insert_network(
            IPSet([cidr]),
            {
                "country": {"iso_code": country},
                "location": {
                    "latitude": MmdbF64(latitude),
                    "longitude": MmdbF64(longitude),
                    "accuracy_radius": 100,
                },
            },
        )
    writer.to_db_file(out)


if __name__ == "__main__":
    main()
