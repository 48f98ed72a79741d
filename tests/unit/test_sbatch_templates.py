"""Sites' and users' sbatch templates: what is accepted and what is refused, and why."""

import pytest

from gateway.common.errors import InvalidInput
from gateway.jobs.sbatch_templates import check_template

GOOD = """{% extends "sbatch/training.sh.j2" %}
{% block header %}
#SBATCH --constraint=a100
{% endblock %}
{% block prologue %}
echo "site prologue" >&2
{{ super() }}
{% endblock %}
"""

FROM_BASE = """{% extends "sbatch/base.sh.j2" %}
{% block prologue %}
{{ container.setup }}
{% endblock %}
{% block command %}
echo before; {{ container.run }}
{% endblock %}
{% block epilogue %}
{{ container.teardown }}
{% endblock %}
"""


@pytest.mark.parametrize("text", [GOOD, FROM_BASE])
def test_templates_that_keep_the_base_are_accepted(text):
    check_template(text, "t.j2")


@pytest.mark.parametrize("text, why", [
    ("#!/bin/bash\nsrun python train.py\n", "must begin with"),
    ('{% extends "sbatch/notebook.sh.j2" %}', "must begin with"),
    ('{% extends "/etc/passwd" %}', "must begin with"),
    ('{% extends name %}', "must begin with"),
    ('{% extends "sbatch/training.sh.j2" %}{% block identity %}x{% endblock %}', "block"),
    ('{% extends "sbatch/training.sh.j2" %}{% block prologue %}trap - EXIT\n'
     '{{ super() }}{% endblock %}', "trap"),
    ('{% extends "sbatch/training.sh.j2" %}{% block prologue %}{{ super() }}\n'
     'true; trap "" EXIT{% endblock %}', "trap"),
    ('{% extends "sbatch/training.sh.j2" %}{% block command %}exec {{ container.run }}'
     '{% endblock %}', "exec"),
    ('{% extends "sbatch/training.sh.j2" %}{% block command %}{{ container.run }}\n'
     '{{ container.run }}{% endblock %}', "exactly once"),
    ('{% extends "sbatch/training.sh.j2" %}{% block command %}echo no container'
     '{% endblock %}', "exactly once"),
    ('{% extends "sbatch/training.sh.j2" %}{% block prologue %}if then fi{% endblock %}',
     "not valid bash"),
    ('{% extends "sbatch/training.sh.j2" %}{% block prologue %}{{ nosuch }}{% endblock %}',
     "undefined"),
    ('{% extends "sbatch/training.sh.j2" %}{% block header %}#SBATCH --comment=x\n'
     '{% endblock %}', "owns"),
    ('{% extends "sbatch/training.sh.j2" %}{% block header %}#SBATCH -o /tmp/x\n'
     '{% endblock %}', "owns"),
    ('{% extends "sbatch/training.sh.j2" %}{% block prologue %}{% if %}{% endblock %}',
     "line 1"),
])
def test_templates_that_would_break_a_job_are_refused(text, why):
    with pytest.raises(InvalidInput, match=why):
        check_template(text, "t.j2")
