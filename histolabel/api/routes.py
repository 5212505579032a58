"""The route table: one place that says, for every route, who may call it and what it takes and
returns. The Chalice app enforces the roles from here and the OpenAPI document is built from it,
so the contract and the checks cannot drift."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from histolabel import commands
from histolabel.api import schemas as s
from histolabel.api import selfservice as ss
from histolabel.api.changes import ChangesOut, ChangesQuery
from histolabel.imports import api as imports

# Where a command holds who may run it, the route lets the same roles through (one rule each).
OWNER = ("owner",)
WRITERS = commands.WRITE_ROLES
REVIEWERS = commands.ReviewLabels.ROLES
ALL = commands.ALL_ROLES
LEARNERS = commands.RequestTraining.ROLES
AUDITORS = ("owner", "auditor")
EXPORTERS = commands.EXPORT_ROLES


def _roles(roles: tuple[str, ...]) -> str:
    names = [f"{r}s" for r in roles]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def refused_in_words(role: str, summary: str, allowed: tuple[str, ...]) -> str:
    """Why a member may not use a route, in words a pathologist reads (no role tuples)."""
    article = "An" if role[:1] in "aeiou" else "A"
    return f"{article} {role} cannot use this ({summary.lower()}): it is for {_roles(allowed)}."


# "open": no token; "user": any valid token; a tuple: those roles in the path's project.
Access = str | tuple[str, ...]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    access: Access
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    content_types: tuple[str, ...] = ("application/json",)

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


EXPORT_TYPES = ("application/geo+json", "text/csv", "application/vnd.apache.parquet")
P = "/projects/{project_id}"
S = P + "/slides/{slide_id}"
C = P + "/categories/{category_id}"

ROUTES: list[Route] = [
    Route("health", "GET", "/health", "open", "Liveness", response=s.HealthOut),
    Route("config", "GET", "/config", "open",
          "Login configuration and the vocabulary: roles, who may do what, palette, job kinds",
          response=s.ConfigOut),
    Route("openapi", "GET", "/openapi.json", "open", "This document"),
    Route("me", "GET", "/me", "user", "The signed-in user", response=s.MeOut),
    Route("list_projects", "GET", "/projects", "user", "The caller's projects and role in each",
          response=s.ProjectsOut),
    Route("create_project", "POST", "/projects", "user", "Create a project; the caller becomes its owner",
          body=s.CreateProjectIn, response=s.ProjectOut, status=201),
    Route("get_project", "GET", P, ALL, "Project settings, members, categories, slides",
          response=s.ProjectOut),
    Route("change_settings", "PUT", P + "/settings", OWNER,
          "Replace project settings (those left out take their defaults)",
          body=s.SettingsIn, response=s.ProjectOut),
    Route("update_settings", "PATCH", P + "/settings", OWNER,
          "Change the settings named; the others keep their current values",
          body=s.SettingsPatchIn, response=s.ProjectOut),
    Route("add_member", "POST", P + "/members", OWNER, "Add a member with a role and site",
          body=s.AddMemberIn, response=s.MemberOut, status=201),
    Route("change_role", "PATCH", P + "/members/{user}", OWNER, "Change a member's role",
          body=s.ChangeRoleIn, response=s.MemberOut),
    Route("remove_member", "DELETE", P + "/members/{user}", OWNER, "Remove a member", response=s.RemovedOut),
    Route("people", "GET", P + "/people", ALL, "How to show each member: name and email from the pool",
          response=s.PeopleOut),
    Route("add_category", "POST", P + "/categories", WRITERS, "Add a category",
          body=s.AddCategoryIn, response=s.CategoryOut, status=201),
    Route("merge_categories", "POST", P + "/categories/merge", OWNER, "Merge categories into one",
          body=s.MergeCategoriesIn, response=s.CategoryOut),
    Route("update_category", "PATCH", C, WRITERS, "Rename, recolour or set the hotkey of a category",
          body=s.UpdateCategoryIn, response=s.CategoryOut),
    Route("exclude_category", "POST", C + "/exclude", OWNER, "Exclude a category from training",
          response=s.CategoryOut),
    Route("include_category", "POST", C + "/include", OWNER, "Include a category in training again",
          response=s.CategoryOut),
    Route("delete_category", "DELETE", C, OWNER, "Delete a category; its labels become unlabeled",
          response=s.DeletedCategoryOut),
    Route("register_slide", "POST", P + "/slides", OWNER, "Register a slide (presigned upload or S3 URI)",
          body=s.RegisterSlideIn, response=s.RegisteredSlideOut, status=201),
    Route("list_slides", "GET", P + "/slides", ALL, "Slides and their processing status",
          response=s.SlidesOut),
    Route("get_slide", "GET", S, ALL, "One slide and its processing status", response=s.SlideOut),
    Route("start_job", "POST", S + "/jobs", OWNER, "Start ingest, segment or embed for a slide",
          body=s.StartJobIn, response=s.JobOut, status=202),
    Route("import_upload", "POST", S + "/imports", WRITERS,
          "A presigned upload for a segmentation, labels or features file to import",
          body=imports.ImportUploadIn, status=201),
    Route("import_start", "POST", S + "/imports/{import_id}/start", WRITERS,
          "Start the job that imports an uploaded file", body=imports.ImportStartIn, status=202),
    Route("slide_mask", "GET", S + "/mask", EXPORTERS,
          "The slide's labels as a mask image (tiled TIFF, values 1..k = the live categories): a redirect "
          "to a presigned copy", query=imports.MaskQuery, status=302),
    Route("job_status", "GET", P + "/jobs/{job_id}", OWNER, "Status of a submitted job",
          response=s.JobStatusOut),
    Route("slide_data", "GET", S + "/data", ALL, "Redirect to a presigned URL of a slide data object",
          query=s.DataQuery, status=302),
    Route("slide_data_urls", "POST", S + "/data/urls", ALL, "Presigned URLs of several slide data objects",
          body=s.DataUrlsIn, response=s.DataUrlsOut),
    Route("slide_labels", "GET", S + "/labels", ALL, "Every labeled superpixel of a slide",
          response=s.SlideLabelsOut),
    Route("slide_predictions", "GET", S + "/predictions", ALL,
          "The latest model's predicted class and certainty of every superpixel of a slide",
          response=s.PredictionsOut),
    Route("label", "POST", S + "/labels", WRITERS, "Label superpixels (ids or brush polygon)",
          body=s.LabelIn, response=s.WriteOut),
    Route("unlabel", "POST", S + "/unlabel", WRITERS, "Remove your labels from superpixels",
          body=s.UnlabelIn, response=s.WriteOut),
    Route("review", "POST", S + "/review", REVIEWERS, "Approve, change or clear labels",
          body=s.ReviewIn, response=s.WriteOut),
    Route("queue", "GET", P + "/queue", LEARNERS, "The next superpixels to label",
          query=s.QueueQuery, response=s.QueueOut),
    Route("changes", "GET", P + "/changes", ALL,
          "What changed since the client's sequence numbers: project seq, the slide's new label entries",
          query=ChangesQuery, response=ChangesOut),
    Route("review_list", "GET", P + "/review", ALL, "Labeled superpixels, filtered, sorted, grouped",
          query=s.ReviewQuery, response=s.ReviewOut),
    Route("review_ids", "GET", P + "/review/ids", ALL, "Ids of every labeled superpixel the filters match",
          query=s.ReviewIdsQuery, response=s.ReviewIdsOut),
    Route("agreement", "GET", P + "/agreement", ALL, "Inter-annotator and label-prediction kappa",
          query=s.AgreementQuery, response=s.AgreementOut),
    Route("request_training", "POST", P + "/training", LEARNERS, "Retrain now",
          response=s.TrainingRequestOut, status=202),
    Route("training", "GET", P + "/training", ALL, "Training runs, models, metrics, learning curve",
          response=s.TrainingOut),
    Route("audit_history", "GET", P + "/audit/history", AUDITORS, "Events of a stream with chain check",
          query=s.HistoryQuery, response=s.HistoryOut),
    Route("audit_replay", "GET", P + "/audit/replay", AUDITORS, "Project and label state as of a moment",
          query=s.ReplayQuery, response=s.ReplayOut),
    Route("export", "GET", P + "/export", EXPORTERS, "Labels and predictions as GeoJSON, CSV or Parquet",
          query=s.ExportQuery, content_types=EXPORT_TYPES),
    Route("start_export", "POST", P + "/exports", EXPORTERS,
          "Export as a job (for large projects): a file in the data bucket, with progress",
          body=s.ExportJobIn, response=s.ExportJobOut, status=202),
    Route("export_status", "GET", P + "/exports/{job_id}", EXPORTERS,
          "An export job's progress and, once done, its download link",
          response=s.ExportStatusOut),
    # Self-service (histolabel/api/selfservice.py).
    Route("create_upload", "POST", P + "/uploads", OWNER,
          "Begin a browser upload of a slide file: a multipart upload straight to S3",
          body=ss.CreateUploadIn, response=ss.UploadOut, status=201),
    Route("upload_parts", "POST", P + "/uploads/parts", OWNER,
          "Presigned URLs of upload parts, and the parts already uploaded (to resume)",
          body=ss.UploadPartsIn, response=ss.UploadPartsOut),
    Route("complete_upload", "POST", P + "/uploads/complete", OWNER,
          "Finish an upload: register the slide and start its ingest",
          body=ss.CompleteUploadIn, response=ss.CompleteUploadOut, status=201),
    Route("remove_slide", "DELETE", S, OWNER, "Remove a slide (an event: the audit keeps it)",
          response=ss.RemovedSlideOut),
    Route("superpixel_estimate", "GET", S + "/superpixel-estimate", OWNER,
          "How many superpixels segmenting this slide with these settings makes",
          query=ss.EstimateQuery, response=ss.EstimateOut),
    Route("invite", "POST", P + "/invitations", OWNER,
          "Invite by email: adds an existing user, or creates one with a temporary password",
          body=ss.InviteIn, response=ss.InviteOut, status=201),
    Route("list_jobs", "GET", P + "/jobs", OWNER, "Every job of the project: state, duration, reason",
          response=ss.JobsOut),
    Route("retry_job", "POST", P + "/jobs/{job_id}/retry", OWNER, "Run a slide's job again",
          response=s.JobOut, status=202),
    Route("cancel_job", "POST", P + "/jobs/{job_id}/cancel", OWNER,
          "Cancel a job: the runner stops it (one not yet started never starts); it ends as cancelled",
          response=ss.CancelOut),
    Route("job_log", "GET", P + "/jobs/{job_id}/log", OWNER,
          "A job's log: its end (local runner) or a link to where it is (CloudWatch)",
          response=ss.JobLogOut),
    Route("select_model", "POST", P + "/models/{version}/use", OWNER,
          "Use this model version: the queue and the overlay follow its predictions",
          response=ss.SelectModelOut),
]  # fmt: skip

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
