"""Client config resolution: where the servers come from, where the
credentials come from, relative paths, and one-line errors naming the file."""

from __future__ import annotations

import base64
import stat

import pytest
import yaml

from services.machinery import Client, config, pki


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No ambient configuration: KYB_CONFIG points into tmp_path (absent)."""
    monkeypatch.delenv("KYB_SERVER", raising=False)
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "home" / "config"))
    return monkeypatch


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca()
    pki.save(ca, d, "ca")
    pki.save(pki.issue(ca, pki.CertSpec("admin", "kubernetes-admin", ("system:masters",),
                                        client=True)), d, "admin")
    return d


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_defaults_to_localhost_plaintext(env):
    cfg = config.load()
    assert cfg.servers == ["localhost:6443"] and not cfg.secure and cfg.source is None


def test_config_server_order_flag_env_file_default(env, tmp_path):
    _write(tmp_path / "home" / "config", {"server": "file:1"})
    assert config.load().servers == ["file:1"]
    env.setenv("KYB_SERVER", "env:2,env:3")
    assert config.load().servers == ["env:2", "env:3"]
    assert config.load("flag:4").servers == ["flag:4"]
    assert config.resolve_servers() == ["env:2", "env:3"]


def test_config_credentials_relative_to_the_file(env, tmp_path, creds):
    d = tmp_path / "home"
    for name in ("ca.crt", "admin.crt", "admin.key"):
        (d / "pki").mkdir(parents=True, exist_ok=True)
        (d / "pki" / name).write_bytes((creds / name).read_bytes())
    _write(d / "config", {"server": "h:6443", "certificate-authority": "pki/ca.crt",
                          "client-certificate": "pki/admin.crt", "client-key": "pki/admin.key",
                          "tls-server-name": "kubernetes"})
    cfg = config.load()
    assert cfg.secure and cfg.cert == (creds / "admin.crt").read_bytes()
    assert cfg.ca_file == str(d / "pki" / "ca.crt")
    assert cfg.tls_server_name == "kubernetes" and cfg.servers == ["h:6443"]
    # --server picks the address; the credentials still come from the file.
    flagged = config.load("other:1")
    assert flagged.servers == ["other:1"] and flagged.cert == cfg.cert


def test_config_kubeconfig_flag_replaces_the_default_file(env, tmp_path, creds):
    _write(tmp_path / "home" / "config", {"server": "default:1"})
    own = _write(tmp_path / "daemon.conf", {
        "server": "own:2", "certificate-authority": str(creds / "ca.crt"), "token": "t0k"})
    cfg = config.load(kubeconfig=str(own))
    assert cfg.servers == ["own:2"] and cfg.token == "t0k" and cfg.cert is None and cfg.secure
    assert cfg.source == own
    with pytest.raises(ValueError, match="client config .*missing.conf does not exist"):
        config.load(kubeconfig=str(tmp_path / "missing.conf"))


def test_config_inline_data(env, tmp_path, creds):
    b64 = lambda name: base64.b64encode((creds / name).read_bytes()).decode()  # noqa: E731
    path = _write(tmp_path / "c", {"certificate-authority-data": b64("ca.crt"),
                                   "client-certificate-data": b64("admin.crt"),
                                   "client-key-data": b64("admin.key")})
    cfg = config.load(kubeconfig=path)
    assert cfg.ca == (creds / "ca.crt").read_bytes() and cfg.key and cfg.ca_file == ""


@pytest.mark.parametrize("data, message", [
    ({"certificate-authority": "nope.crt"}, r"cannot read certificate authority .*nope.crt"),
    ({"certificate-authority": "CA", "client-certificate": "CRT"}, "go together"),
    ({"client-certificate": "CRT", "client-key": "KEY"}, "need certificate-authority"),
    ({"certificate-authority": "CA", "client-certificate": "CRT", "client-key": "CA"},
     "not an unencrypted PEM private key"),
    ({"certificate-authority": "CA", "client-certificate": "CA", "client-key": "KEY"},
     "is not the private key of"),
    ({"certificate-authority-data": "!!!"}, "not base64"),
    ({"server": "nonsense"}, "is not HOST:PORT"),
    ({"token": 5, "certificate-authority": "CA"}, "token is not a string"),
])
def test_config_bad_files_are_one_line_naming_the_file(env, tmp_path, creds, data, message):
    files = {"CA": str(creds / "ca.crt"), "CRT": str(creds / "admin.crt"),
             "KEY": str(creds / "admin.key")}
    data = {k: files.get(v, v) if isinstance(v, str) else v for k, v in data.items()}
    path = _write(tmp_path / "bad.conf", data)
    with pytest.raises(ValueError, match=message) as err:
        config.load(kubeconfig=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_config_unreadable_yaml_is_one_line(env, tmp_path):
    path = tmp_path / "y.conf"
    path.write_text("server: [unclosed\n")
    with pytest.raises(ValueError, match="cannot read client config") as err:
        config.load(kubeconfig=path)
    assert "\n" not in str(err.value)


def test_config_write_round_trips_credentials(env, tmp_path, creds):
    path = config.write_config(["a:1", "b:2"], tmp_path / "w" / "config",
                               certificate_authority=creds / "ca.crt",
                               client_certificate=creds / "admin.crt",
                               client_key=creds / "admin.key")
    cfg = config.load(kubeconfig=path)
    assert cfg.servers == ["a:1", "b:2"] and cfg.cert and cfg.key
    secret = config.write_config(["a:1"], tmp_path / "t" / "config",
                                 certificate_authority=creds / "ca.crt", token="s3cret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert config.load(kubeconfig=secret).token == "s3cret"
    plain = config.write_config(["a:1"], tmp_path / "p" / "config")
    assert yaml.safe_load(plain.read_text()) == {"server": "a:1"}


async def test_config_client_is_plaintext_unless_the_config_has_a_ca(env, tmp_path, creds):
    async with Client(["127.0.0.1:1"]) as explicit:
        assert not explicit.secure and explicit.config is None
    _write(tmp_path / "home" / "config", {"server": "h:1",
                                          "certificate-authority": str(creds / "ca.crt")})
    async with Client() as default:
        assert default.secure and default.servers == ["h:1"]
    cfg = config.ClientConfig.from_files("x:1,y:2", ca_file=creds / "ca.crt",
                                         cert_file=creds / "admin.crt",
                                         key_file=creds / "admin.key")
    async with Client.from_config(cfg) as c:
        assert c.secure and c.servers == ["x:1", "y:2"]
        assert c.channel() is c.channel()
    async with Client(["z:3"], config=cfg) as c:
        assert c.servers == ["z:3"] and c.secure
