# pnp: perceptual–neural–physical sound matching (Han, Lostanlen & Lagrange, TASLP 2024).
#   snakemake --cores all                                            # laptop, into results/
#   snakemake --cores all --configfile workflow/presets/paper.yaml   # into results/paper/
# Targets go before --configfile (it takes several values). Paths: README.md, docs/.
from snakemake.utils import min_version

from pnp_core.config import load_yaml, validate_config

min_version("9.0")

# Snakemake's own message for a YAML syntax error names neither file nor line: say both.
load_yaml("config.yaml")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")


include: "workflow/rules/common/paths.smk"
include: "workflow/rules/common/run_grid.smk"
include: "workflow/rules/common/rule_functions.smk"
include: "workflow/rules/common/targets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/jacobian.smk"
include: "workflow/rules/dtfa.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/diagnose.smk"


rule all:
    default_target: True
    input:
        all_targets(),
