"""Each job of a batch -> a checked trial: its settings, labels, output folder and command.

A job's trial settings come from its own composed config (`_compose`), so every trial is
checked on its own, and an error names the trial and its overrides.
"""

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from hydra_vertex_pipelines.components.sweep_files import TrialFiles, gcs_to_fuse
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec import names
from hydra_vertex_pipelines.pipeline_builder.spec.fallbacks import FALLBACK_KINDS
from hydra_vertex_pipelines.pipeline_builder.spec.settings import Code, Entry, TrialSettings
from hydra_vertex_pipelines.pipeline_builder.spec.trials import retry_policy
from hydra_vertex_pipelines.pipeline_builder.spec.validation import (
    check_arguments,
    check_gcs_uri,
    check_kms_key,
    check_trial_settings,
)

from . import _commands
from ._choices import FIELD, FanOut, Mode
from ._compose import JobPlan, plan_jobs, read_settings
from ._context import LaunchContext
from ._settings import LaunchSettings, choose

TRIAL = f"{FIELD}.trial"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedTrial:
    arguments: Dict[str, Any]  # what `build_trial` takes
    output_base: str  # the folder holding its folder
    pickle: Optional[Tuple[str, bytes]]  # gs:// URI and pickled job, for the pickle entry


@dataclass(frozen=True)
class PlannedTrials:
    """The batch's trials as `build_trial` takes them, and what they need besides."""

    base_settings: TrialSettings  # `hydra.launcher.trial` of the sweep itself
    code: Code  # one for the whole sweep: one package serves every trial
    trials: List[Dict[str, Any]]  # build_trial's arguments, per trial
    pickles: Dict[str, bytes]  # gs:// URI -> pickled job
    output_bases: Set[str]  # folders holding trial folders


class TrialPlanner:
    """Plans one batch's trials; the command a trial runs is made once per distinct
    interpreter and command, since every trial of a sweep mostly shares it."""

    def __init__(self, context: LaunchContext, settings: LaunchSettings, base_settings: TrialSettings, pickled: bool) -> None:
        self.context = context
        self.settings = settings
        self.base_settings = base_settings
        self.singleton_state: Any = None
        if pickled:
            from hydra.core.singleton import Singleton

            self.singleton_state = Singleton.get_state()
        self.pickled = pickled
        self._entries: Dict[Any, Tuple[List[str], List[str]]] = {}

    def labels(self, settings: TrialSettings) -> Dict[str, str]:
        """The CustomJob's labels: derived, the sweep's, the trial's own."""
        labels = {
            **self.settings.derived_labels,
            **self.settings.labels,
            **names.check_labels(settings.labels, f"{TRIAL}.labels"),
        }
        names.check_labels(labels, f"{TRIAL}.labels")
        for key, value in labels.items():
            if value == "":  # Vertex takes it; gcpc's launcher drops it before the CustomJob is created
                where = f"{TRIAL}.labels.{key}" if key in (settings.labels or {}) else f"{FIELD}.labels.{key}"
                raise ConfigError(
                    where,
                    value,
                    "a non-empty label value: gcpc's CustomJob launcher removes empty values (recursive_remove_empty), "
                    "so the trials' CustomJobs would not carry the label",
                    "give it a value, e.g. 'true'",
                )
        return labels

    def command(
        self, job: JobPlan, code: Code, num: int, overrides: List[str], output_uri: str, base: str
    ) -> Tuple[List[str], List[str], Optional[bytes]]:
        """The trial's container command and arguments, and its pickled job if it has one."""
        settings = job.settings
        if self.pickled:
            assert job.config is not None
            context = self.context
            pickle = _commands.pickle_job(context.task_function, context.hydra_context, job.config, self.singleton_state)
            args = _commands.pickle_args(
                TrialFiles(gcs_to_fuse(output_uri)).job_pickle, overrides, num, self.settings.run_id, gcs_to_fuse(base)
            )
            return [settings.python, "-m", _commands.PICKLE_ENTRY], args, pickle
        key = (settings.python, tuple(settings.command or ()))
        if key not in self._entries:
            module = _commands.package_module(settings, self.context.cwd) if code is Code.PACKAGE else None
            self._entries[key] = _commands.trial_command(
                settings, self.context.cwd, self.context.argv, self.context.config, module
            )
        command, app_args = self._entries[key]
        return command, _commands.job_args(app_args, overrides, num, self.settings.run_id, gcs_to_fuse(base)), None

    def plan(self, job: JobPlan, num: int, overrides: List[str]) -> PlannedTrial:
        """Checks job `num` and makes its trial."""
        settings = job.settings
        try:
            check_trial_settings(settings, TRIAL, require_image=self.settings.mode is not Mode.LOCAL)
            code = Code(settings.code)
            if settings.encryption_spec_key_name is not None:
                check_kms_key(settings.encryption_spec_key_name, self.settings.location, f"{TRIAL}.encryption_spec_key_name")
            labels = self.labels(settings)
            base = (
                check_gcs_uri(settings.base_output_dir, f"{TRIAL}.base_output_dir")
                if settings.base_output_dir
                else self.settings.run_root
            )
            output_uri = check_gcs_uri(f"{base}/{job.subdir.strip('/')}", f"{TRIAL}.base_output_dir + hydra.sweep.subdir")
            if settings.code != self.base_settings.code:
                raise ConfigError(
                    f"{TRIAL}.code",
                    settings.code,
                    f"{self.base_settings.code}, as for the whole sweep (one package serves every trial)",
                )
            command, args, pickle = self.command(job, code, num, overrides, output_uri, base)
            check_arguments([*command, *args], 0, "override")  # before a wheel is built
        except ConfigError as e:
            raise e.at(f"trial {num}: {' '.join(overrides)}") from None
        if code is Code.PACKAGE:  # the pools run the prebuilt image
            settings = dataclasses.replace(settings, image_uri=settings.package.executor_image_uri or "local")
        arguments = dict(
            number=num,
            job_id=f"{self.settings.run_id}_{num}",
            overrides=overrides,
            settings=settings,
            command=command,
            args=args,
            output_uri=output_uri,
            name_prefix=self.context.app_name,
            labels=labels,
        )
        return PlannedTrial(arguments, base, None if pickle is None else (TrialFiles(output_uri).job_pickle, pickle))


def _check_loop_retries(trials: List[Dict[str, Any]]) -> None:
    """Trials looped in one task share its retry policy."""
    retries = [retry_policy(p["settings"]) for p in trials]
    if any(r != retries[0] for r in retries):
        i = next(i for i, r in enumerate(retries) if r != retries[0])
        raise ConfigError(
            f"{TRIAL}.retries",
            f"{retries[0].get('num_retries', 0)} for trial {trials[0]['number']}, "
            f"{retries[i].get('num_retries', 0)} for trial {trials[i]['number']}",
            "retry settings shared by every trial when trials loop in one task (fan_out=parallel_for); "
            "fan_out=tasks gives each trial its own",
        )


def _warn_of_unused_fallbacks(settings: LaunchSettings, trials: List[Dict[str, Any]]) -> None:
    """Fallbacks take effect only when recovery runs a trial again after a failure that moves it on."""
    if not any(p["settings"].fallbacks for p in trials):
        return
    recovery = settings.submit.recovery if settings.submit else None
    if recovery is None or recovery.max_attempts < 2 or not recovery.kinds & FALLBACK_KINDS:
        kinds = ", ".join(sorted(k.value for k in FALLBACK_KINDS))
        log.warning(
            f"{TRIAL}.fallbacks are set, but no attempt of this sweep can run on them: a trial runs on a fallback when "
            f"recovery (mode=submit, wait=true, {FIELD}.recovery.max_attempts > 1) runs it again after a failure "
            f"of a kind among {kinds} that is in {FIELD}.recovery.kinds"
        )


def plan_trials(
    context: LaunchContext, settings: LaunchSettings, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> PlannedTrials:
    """Checks every job's trial settings and makes its trial's arguments."""
    base_settings = read_settings(context.config.hydra.launcher.trial, TRIAL)
    entry = choose(base_settings.entry, f"{TRIAL}.entry", Entry)
    pickled = _commands.uses_pickle(entry, base_settings, context.task_function, context.from_command_line)
    planner = TrialPlanner(context, settings, base_settings, pickled)
    jobs = plan_jobs(context, job_overrides, initial_job_idx, compose=pickled)
    planned = [planner.plan(job, initial_job_idx + i, list(job_overrides[i])) for i, job in enumerate(jobs)]
    trials = [p.arguments for p in planned]
    if settings.fan_out is FanOut.PARALLEL_FOR:
        _check_loop_retries(trials)
    _warn_of_unused_fallbacks(settings, trials)
    return PlannedTrials(
        base_settings=base_settings,
        code=Code(base_settings.code) if planned else Code.IMAGE,  # each trial's was checked, and is the sweep's
        trials=trials,
        pickles=dict(p.pickle for p in planned if p.pickle is not None),
        output_bases={settings.run_root, *(p.output_base for p in planned)},
    )
