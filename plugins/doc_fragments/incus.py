# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Options shared by the homelab.aistack.incus_* modules: how to reach Incus."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Where the Incus API listens.
      - A path (or C(unix:/path), C(unix:///path)) is a local unix socket;
        C(https://host:8443) is a remote that needs O(client_cert) and
        O(client_key) trusted by the server (the module fails without them).
      - M(homelab.aistack.incus_remote) prepares a remote (client pair, pinned
        server certificate, trust) and returns the paths for these options.
      - When omitted, the local socket C(/var/lib/incus/unix.socket) (or
        C($INCUS_DIR/unix.socket)) is used.
    type: str
  client_cert:
    description: Client certificate (PEM) for a remote O(url).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of O(client_cert) for a remote O(url).
    type: path
    aliases: [key_file]
  server_cert:
    description:
      - The server's own certificate (PEM), pinned by its SHA-256 fingerprint as the
        incus CLI pins C(servercerts/); overrides O(validate_certs).
      - Not a CA; a server whose certificate a CA signed needs only O(validate_certs).
    type: path
  validate_certs:
    description: Verify the remote server's TLS certificate against the system CAs.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for one API call or background operation.
    type: int
    default: 120
requirements:
  - pylxd (on the controller, in the Python that runs Ansible)
notes:
  - Supports check mode and diff mode.
  - Incus API errors become a failure whose C(msg) names the object and the cause.
"""

    # The options the object modules other than incus_instance share (project,
    # network, network ACL, profile); each module says in its own description what
    # Incus refuses to remove.
    OBJECT = r"""
options:
  description:
    description: Free-text description. Left unchanged when omitted.
    type: str
  state:
    description:
      - V(present) creates the object or puts the fields that differ; V(absent) removes it.
      - In check mode nothing is written; the result and the diff show the object as
        it would be.
    type: str
    choices: [present, absent]
    default: present
"""

    # The config option of the modules whose object has one; each module's description
    # names typical keys and says whether keys left out are kept or removed.
    CONFIG = r"""
options:
  config:
    description:
      - Config keys by their Incus names (the module's description gives examples).
      - Values are compared as strings (Incus stores them so); booleans become C(true)/C(false).
    type: dict
    default: {}
"""
