"""aistack: infra.yml to Ansible inventory for the homelab.aistack collection."""

__version__ = "0.1.0"
