"""A throwaway cluster CA for tests: a serving certificate for the API
server on 127.0.0.1, client certificates for any user on demand, a token
file, and the ClientConfig that goes with each identity."""

from __future__ import annotations

import datetime
import pathlib

from services.machinery import pki
from services.machinery.config import ClientConfig


class TestPki:
    __test__ = False  # not a pytest class

    def __init__(self, directory: pathlib.Path, name: str = "kyb-test-ca"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = pki.create_ca(name)
        self.ca_file, _ = pki.save(self.ca, self.dir, "ca")
        self.server_cert, self.server_key = self.issue(pki.CertSpec(
            "apiserver", "kube-apiserver", dns_names=("localhost",),
            ip_addresses=("127.0.0.1",), server=True))
        self.tokens: dict[str, tuple[str, tuple[str, ...]]] = {}

    def issue(self, spec: pki.CertSpec, **validity: datetime.datetime
              ) -> tuple[pathlib.Path, pathlib.Path]:
        return pki.save(pki.issue(self.ca, spec, **validity), self.dir, spec.name)

    def user(self, name: str, groups: tuple[str, ...] = (), **validity: datetime.datetime
             ) -> tuple[pathlib.Path, pathlib.Path]:
        """(cert, key) files for a client certificate CN=name, O=groups."""
        stem = "user-" + "".join(c if c.isalnum() else "_" for c in name) + (
            "-expired" if validity else "")
        return self.issue(pki.CertSpec(stem, name, tuple(groups), client=True), **validity)

    def config(self, servers: str | list[str], name: str | None = None,
               groups: tuple[str, ...] = (), *, token: str | None = None) -> ClientConfig:
        """A client config for the user ``name`` (a certificate), or for a
        bearer ``token`` alone."""
        cert = key = None
        if name is not None:
            cert, key = self.user(name, groups)
        return ClientConfig.from_files(servers, ca_file=self.ca_file, cert_file=cert,
                                       key_file=key, token=token)

    def add_token(self, token: str, name: str, groups: tuple[str, ...] = ()) -> None:
        self.tokens[token] = (name, groups)
        lines = [f'{t},{n},{n},"{",".join(g)}"' for t, (n, g) in self.tokens.items()]
        (self.dir / "tokens.csv").write_text("\n".join(lines) + "\n")

    def apiserver_args(self) -> list[str]:
        args = ["--tls-cert-file", str(self.server_cert),
                "--tls-private-key-file", str(self.server_key),
                "--client-ca-file", str(self.ca_file)]
        if self.tokens:
            args += ["--token-auth-file", str(self.dir / "tokens.csv")]
        return args
