# -*- coding: utf-8 -*-
# Inventory source: the apps of each host, from `deploy list --json` run there over ssh.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
name: apps
short_description: The apps of each deploy host, from C(deploy list --json), as inventory hosts and groups
description:
  - Runs C(deploy list --json) on every listed host over ssh and adds one inventory host per app instance, named
    C(APP@HOST), connecting to that host, with the variables C(deploy_app), C(deploy_host) and
    C(deploy_app_database). Groups - C(deploy_hosts) (the hosts themselves), C(deploy_apps) (every app instance),
    C(app_NAME) (one app on every host), C(apps_on_HOST) (every app of one host), C(deploy_invalid_apps) (an
    app folder deploy cannot read).
  - A host whose C(deploy list) fails fails the inventory, because an evacuation must not miss an app.
  - The file must be named C(*.deploykit.yml) or C(*.deploykit.yaml).
version_added: 0.1.0
author: deploykit
options:
  plugin:
    description: The plugin's name.
    required: true
    choices: [deploykit.deploy.apps]
  hosts:
    description:
      - The deploy hosts, each a name (what ssh and deploy's global config call it) or a mapping of the name to
        host variables (for example C(ansible_host)).
    type: list
    elements: raw
    required: true
  ssh_common_args:
    description:
      - Extra ssh arguments, used for C(deploy list) and given to every host as C(ansible_ssh_common_args)
        (for example C(-F /etc/deploykit/ssh_config)).
    type: str
    default: ''
  deploy_command:
    description: How to call deploy on the hosts.
    type: str
    default: deploy
  python_interpreter:
    description: C(ansible_python_interpreter) of every host.
    type: str
    default: /usr/bin/python3
'''

EXAMPLES = r'''
# fleet.deploykit.yml
plugin: deploykit.deploy.apps
hosts:
  - a
  - b
  - c: {ansible_host: 10.0.0.3}
ssh_common_args: -F /etc/deploykit/ssh_config
'''

import json
import re
import shlex
import subprocess

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin


def group_name(prefix, name):
    """A group name Ansible accepts (letters, digits, underscores)."""
    return prefix + re.sub(r'[^A-Za-z0-9_]', '_', name)


class InventoryModule(BaseInventoryPlugin):

    NAME = 'deploykit.deploy.apps'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('.deploykit.yml', '.deploykit.yaml'))

    def list_apps(self, host, address):
        """The `apps` of `deploy list --json` on one host."""
        argv = ['ssh'] + shlex.split(self.get_option('ssh_common_args')) + [address, '--', self.get_option('deploy_command') + ' list --json -q']
        try:
            completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AnsibleParserError('deploy list on %s: %s' % (host, error))
        stdout, stderr = completed.stdout.decode('utf-8', 'replace'), completed.stderr.decode('utf-8', 'replace')
        try:
            document = json.loads(stdout)
        except ValueError:
            document = None
        if completed.returncode != 0 or not isinstance(document, dict):
            raise AnsibleParserError('deploy list --json on %s failed (exit %s): %s' % (host, completed.returncode, stderr.strip()[-500:] or stdout.strip()[-500:]))
        return document.get('apps', [])

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        ssh_args = self.get_option('ssh_common_args')
        for group in ('deploy_hosts', 'deploy_apps', 'deploy_invalid_apps'):
            self.inventory.add_group(group)
        for entry in self.get_option('hosts'):
            if isinstance(entry, dict):
                if len(entry) != 1:
                    raise AnsibleParserError('each entry of hosts is a name or {name: {variables}}, not %r' % (entry,))
                host, host_vars = list(entry.items())[0]
                host_vars = host_vars or {}
            else:
                host, host_vars = str(entry), {}
            address = host_vars.get('ansible_host', host)
            connection = dict(host_vars, ansible_host=address, ansible_python_interpreter=self.get_option('python_interpreter'))
            if ssh_args:
                connection.setdefault('ansible_ssh_common_args', ssh_args)
            self.add_host(host, 'deploy_hosts', dict(connection, deploy_host=host))
            on_host = self.inventory.add_group(group_name('apps_on_', host))
            for app in self.list_apps(host, address):
                instance = '%s@%s' % (app['name'], host)
                self.add_host(instance, on_host, dict(connection, deploy_host=host, deploy_app=app['name'], deploy_app_dir=app.get('dir'),
                                                      deploy_app_database=app.get('database')))
                self.inventory.add_child('deploy_apps', instance)
                self.inventory.add_child(self.inventory.add_group(group_name('app_', app['name'])), instance)
                if not app.get('valid', True):
                    self.inventory.add_child('deploy_invalid_apps', instance)

    def add_host(self, name, group, variables):
        self.inventory.add_host(name, group=group)
        for key, value in variables.items():
            self.inventory.set_variable(name, key, value)
