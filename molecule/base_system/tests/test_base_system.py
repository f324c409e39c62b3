"""What a user of an aistack instance sees after base_system ran and bad input was refused."""

import pytest

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.parametrize(
    "package", ["curl", "jq", "locales", "tzdata", "unattended-upgrades", "zstd"]
)
def test_packages_are_installed(host, package):
    assert host.package(package).is_installed


def test_private_ca_is_in_the_system_bundle(host):
    subjects = host.check_output(
        f"openssl crl2pkcs7 -nocrl -certfile {BUNDLE} | openssl pkcs7 -print_certs -noout"
    )
    assert "CN = aistack molecule test CA" in subjects


def test_host_bundle_is_installed_under_the_bootstrap_name(host):
    assert host.file("/usr/local/share/ca-certificates/aistack-host-bundle.crt").is_file
    assert not host.file("/usr/local/share/ca-certificates/aistack-nonexistent.crt").exists


def test_https_through_the_proxy_works_with_the_system_bundle(host):
    # requests-style clients read REQUESTS_CA_BUNDLE/SSL_CERT_FILE; curl and Python use the bundle.
    assert host.run("curl -fsS -o /dev/null https://pypi.org/simple/pip/").rc == 0
    probe = host.run(
        "python3 -c 'import urllib.request as u; print(u.urlopen(\"https://pypi.org/simple/pip/\").status)'"
    )
    assert probe.stdout.strip() == "200", probe.stderr


def test_pip_and_services_are_pointed_at_the_bundle(host):
    assert f"cert = {BUNDLE}" in host.file("/etc/pip.conf").content_string
    environment = host.file("/etc/environment").content_string
    assert f"REQUESTS_CA_BUNDLE={BUNDLE}" in environment
    assert f"SSL_CERT_FILE={BUNDLE}" in environment
    manager_env = host.check_output("systemctl show-environment")
    assert f"REQUESTS_CA_BUNDLE={BUNDLE}" in manager_env
    assert f"SSL_CERT_FILE={BUNDLE}" in manager_env


def test_time_zone_survived_the_bad_input(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.file("/etc/timezone").content_string.strip() == "Europe/Berlin"
    assert host.check_output("date +%Z") in {"CET", "CEST"}


def test_locale_is_generated_and_default(host):
    assert "de_DE.utf8" in host.check_output("locale -a").split()
    assert "LANG=de_DE.UTF-8" in host.file("/etc/default/locale").content_string


def test_journald_runs_with_the_size_limit(host):
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "SystemMaxUse=64M" in config
    assert host.service("systemd-journald").is_running


def test_unattended_upgrades_are_switched_on(host):
    dump = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
