"""The pages of coordinators, clinics, QA and auditors. Thin: forms in, services, templates out."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from coldchain.api.common import ctx, request_id
from coldchain.api.ratelimit import Refusal, attempt
from coldchain.domain.audit import Checkpoint
from coldchain.domain.custody import Decision, Disposition
from coldchain.domain.errors import DomainError, NotFoundError
from coldchain.domain.roles import Role
from coldchain.services import accounts, audit, board, checkpoints, custody, fleet, shipments
from coldchain.services.signing import SignatureInput
from coldchain.services.timefmt import parse_rfc3339
from coldchain.web import bp, current_user, signed_in

PATIENT_FIELDS = (("mrn", "Medical record number"), ("name", "Full name"), ("dob", "Date of birth"))
Page = tuple[str, int] | BaseResponse
STAFF = (Role.ADMIN, Role.COORDINATOR, Role.COURIER, Role.QA, Role.AUDITOR)
REVIEWERS = (Role.ADMIN, Role.COORDINATOR, Role.QA, Role.AUDITOR)


def _patient(form: Any) -> dict[str, str]:
    """Patient identifiers from a form: only the fields filled in, as the clinic typed them."""
    return {
        key: form.get(key, "").strip() for key, _ in PATIENT_FIELDS if form.get(key, "").strip()
    }


def _form_version(form: Any) -> int:
    """The version a signer saw, from a form's hidden field; a bad one is a stale form."""
    text = form.get("version", "").strip()
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise DomainError("this form is out of date: reload the page", field="version")
    return int(text)


def _too_many(refusal: Refusal) -> DomainError:
    return DomainError(
        f"Too many signature attempts: try again in {refusal.retry_after_s} seconds.",
        code="rate-limited",
    )


def _retry_later(page: str, refusal: Refusal) -> Response:
    return Response(page, 429, {"Retry-After": str(refusal.retry_after_s)})


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"user": g.get("user"), "Role": Role, "patient_fields": PATIENT_FIELDS}


# --- signing in -------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Page:
    error = None
    username = request.form.get("username", "").strip()
    refusal = attempt("login", username) if request.method == "POST" else None
    if refusal is not None:
        error = f"Too many sign-in attempts: try again in {refusal.retry_after_s} seconds."
        page = render_template("login.html", error=error)
        return Response(page, 429, {"Retry-After": str(refusal.retry_after_s)})
    if request.method == "POST":
        try:
            principal = accounts.sign_in(
                sessions=ctx().sessions,
                username=username,
                password=request.form.get("password", ""),
                request_id=request_id(),
            )
        except DomainError as exc:
            error = exc.message
        else:
            session.clear()
            session.permanent = True
            session["user_id"] = principal.user_id
            target = request.args.get("next") or ""
            # Only a path on this site: never an open redirect to another host.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("web.home")
            return redirect(target)
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
@signed_in()
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
@signed_in()
def home() -> BaseResponse:
    role = current_user().role
    if role is Role.CLINIC:
        return redirect(url_for("web.incoming"))
    if role is Role.QA:
        return redirect(url_for("web.qa"))
    if role is Role.AUDITOR:
        return redirect(url_for("web.excursion_log"))
    return redirect(url_for("web.board_page"))


# --- coordinator ------------------------------------------------------------------------


@bp.get("/board")
@signed_in(*STAFF)
def board_page() -> str:
    rows = board.board(sessions=ctx().sessions, principal=current_user())
    return render_template("board.html", rows=rows)


@bp.get("/board.json")
@signed_in(*STAFF, Role.CLINIC)
def board_json() -> Response:
    return jsonify(board.board(sessions=ctx().sessions, principal=current_user()))


@bp.route("/shipments/new", methods=["GET", "POST"])
@signed_in(Role.ADMIN, Role.COORDINATOR)
def new_shipment() -> Page:
    app = ctx()
    error: DomainError | None = None
    form = request.form
    if request.method == "POST":
        try:
            monitoring_from = form.get("monitoring_from", "").strip()
            created = shipments.create_shipment(
                sessions=app.sessions,
                request=shipments.NewShipment(
                    coi=form.get("coi", ""),
                    profile=form.get("profile", ""),
                    origin_site=form.get("origin_site", ""),
                    destination_site=form.get("destination_site", ""),
                    loggers=[x.strip() for x in form.get("loggers", "").split(",") if x.strip()],
                    patient=_patient(form),
                    monitoring_from=parse_rfc3339(monitoring_from) if monitoring_from else None,
                    seal_id=form.get("seal_id", "").strip() or None,
                ),
                creator=current_user(),
                profiles=app.settings.profiles,
                secret_key=app.settings.secret_key,
                request_id=request_id(),
                fleet_policy=fleet.policy_from_settings(app.settings.values),
            )
        except DomainError as exc:
            error = exc
        except ValueError:
            error = DomainError("monitoring from must be a time like 2026-11-25T08:00:00Z",
                                field="monitoring_from")  # fmt: skip
        else:
            flash(f"Shipment {created['id']} created for COI {created['coi']}.")
            for warning in created["warnings"]:
                flash(f"Warning: {warning['message']}.")
            return redirect(url_for("web.shipment_page", shipment_id=created["id"]))
    sites = accounts.list_sites(sessions=app.sessions)
    loggers = accounts.list_loggers(sessions=app.sessions)
    status = 400 if error else 200
    return render_template(
        "shipment_new.html",
        error=error,
        form=form,
        sites=sites,
        loggers=loggers,
        profiles=sorted(app.settings.profiles),
    ), status


# --- a shipment -------------------------------------------------------------------------


@bp.get("/shipments/<int:shipment_id>")
@signed_in()
def shipment_page(shipment_id: int) -> str:
    detail = shipments.get_shipment(
        sessions=ctx().sessions, shipment_id=shipment_id, principal=current_user()
    )
    policy = fleet.policy_from_settings(ctx().settings.values)
    care = fleet.list_fleet(sessions=ctx().sessions, policy=policy, logger_ids=detail["loggers"])
    return render_template("shipment.html", s=detail, care=care, policy=policy)


@bp.get("/fleet")
@signed_in(*REVIEWERS)
def fleet_page() -> str:
    policy = fleet.policy_from_settings(ctx().settings.values)
    rows = fleet.list_fleet(sessions=ctx().sessions, policy=policy)
    return render_template("fleet.html", rows=rows, policy=policy)


@bp.get("/shipments/<int:shipment_id>/chart.json")
@signed_in()
def shipment_chart(shipment_id: int) -> Response:
    app = ctx()
    return jsonify(
        board.chart(
            sessions=app.sessions,
            shipment_id=shipment_id,
            principal=current_user(),
            profiles=app.settings.profiles,
        )
    )


# --- clinic -----------------------------------------------------------------------------


@bp.get("/incoming")
@signed_in(Role.CLINIC)
def incoming() -> str:
    rows = shipments.list_shipments(
        sessions=ctx().sessions, principal=current_user(), status=None, limit=500, offset=0
    )
    return render_template("incoming.html", rows=rows)


@bp.route("/shipments/<int:shipment_id>/receive", methods=["GET", "POST"])
@signed_in(Role.CLINIC)
def receive(shipment_id: int) -> Page:
    app = ctx()
    error: DomainError | None = None
    form = request.form
    refusal = attempt("signature", current_user().username) if request.method == "POST" else None
    if refusal is not None:
        error = _too_many(refusal)
    elif request.method == "POST":
        try:
            custody.record_receipt(
                sessions=app.sessions,
                shipment_id=shipment_id,
                principal=current_user(),
                receipt=custody.NewReceipt(
                    version=_form_version(form),
                    coi_scan=form.get("coi_scan", ""),
                    patient=_patient(form),
                    seal_id=form.get("seal_id", "").strip(),
                    decision=Decision(form.get("decision", "")),
                    reason=form.get("reason", "").strip() or None,
                    signature=SignatureInput(
                        password=form.get("password", ""), meaning=form.get("meaning", "")
                    ),
                ),
                secret_key=app.settings.secret_key,
                request_id=request_id(),
            )
        except DomainError as exc:
            error = exc
        except ValueError:
            error = DomainError("choose accept, reject or quarantine", field="decision")
        else:
            flash(f"Receipt recorded: {form.get('decision')}.")
            return redirect(url_for("web.shipment_page", shipment_id=shipment_id))
    detail = shipments.get_shipment(
        sessions=app.sessions, shipment_id=shipment_id, principal=current_user()
    )
    status = 200 if error is None else (409 if error.code.endswith("mismatch") else 400)
    if refusal is not None:
        return _retry_later(
            render_template("receive.html", s=detail, error=error, form=form), refusal
        )
    return render_template("receive.html", s=detail, error=error, form=form), status


# --- QA ---------------------------------------------------------------------------------


@bp.get("/qa")
@signed_in(Role.QA, Role.ADMIN)
def qa() -> str:
    rows = shipments.list_excursions(
        sessions=ctx().sessions,
        principal=current_user(),
        filters=shipments.ExcursionFilter(disposition="undecided"),
        limit=500,
        offset=0,
    )
    return render_template("qa.html", rows=rows)


@bp.route("/excursions/<int:excursion_id>/disposition", methods=["GET", "POST"])
@signed_in(Role.QA)
def disposition(excursion_id: int) -> Page:
    app = ctx()
    error: DomainError | None = None
    form = request.form
    refusal = attempt("signature", current_user().username) if request.method == "POST" else None
    if refusal is not None:
        error = _too_many(refusal)
    elif request.method == "POST":
        try:
            custody.record_disposition(
                sessions=app.sessions,
                excursion_id=excursion_id,
                principal=current_user(),
                disposition=custody.NewDisposition(
                    version=_form_version(form),
                    decision=Disposition(form.get("decision", "")),
                    reason=form.get("reason", ""),
                    signature=SignatureInput(
                        password=form.get("password", ""), meaning=form.get("meaning", "")
                    ),
                ),
                profiles=app.settings.profiles,
                request_id=request_id(),
            )
        except DomainError as exc:
            error = exc
        except ValueError:
            error = DomainError("choose a decision", field="decision")
        else:
            flash(f"Disposition of excursion {excursion_id} recorded.")
            return redirect(url_for("web.qa"))
    excursion = custody.get_excursion(
        sessions=app.sessions, excursion_id=excursion_id, principal=current_user()
    )
    page = render_template("disposition.html", e=excursion, error=error, form=form)
    if refusal is not None:
        return _retry_later(page, refusal)
    return page, 400 if error else 200


# --- auditors ---------------------------------------------------------------------------


def excursion_filters(args: Any) -> shipments.ExcursionFilter:
    """The excursion log's filters from a query string; a bad time is a clear error."""
    times = {}
    for name in ("since", "until"):
        value = args.get(name, "").strip()
        try:
            times[name] = parse_rfc3339(value) if value else None
        except ValueError:
            raise DomainError(f"{name}: use a time like 2026-11-25T08:00:00Z", field=name) from None
    return shipments.ExcursionFilter(
        since=times["since"],
        until=times["until"],
        site=args.get("site") or None,
        kind=args.get("kind") or None,
        status=args.get("status") or None,
        disposition=args.get("disposition") or None,
    )


@bp.get("/excursions")
@signed_in(*REVIEWERS)
def excursion_log() -> str:
    app = ctx()
    rows = shipments.list_excursions(
        sessions=app.sessions,
        principal=current_user(),
        filters=excursion_filters(request.args),
        limit=2000,
        offset=0,
    )
    sites = accounts.list_sites(sessions=app.sessions)
    return render_template("excursions.html", rows=rows, args=request.args, sites=sites)


@bp.get("/audit")
@signed_in(Role.ADMIN, Role.QA, Role.AUDITOR)
def audit_trail() -> str:
    app = ctx()
    filters = audit.AuditFilter(
        entity=request.args.get("entity") or None,
        actor=request.args.get("actor") or None,
        action=request.args.get("action") or None,
    )
    events = audit.list_events(sessions=app.sessions, filters=filters, limit=500, offset=0)
    checkpoint: Checkpoint | None = None
    checkpoint_problem = None
    try:
        signed = checkpoints.latest(sessions=app.sessions)
        checkpoints.check_signature(signed, None)
        checkpoint = signed.checkpoint
    except NotFoundError:
        checkpoint_problem = "no checkpoint yet: run coldchain audit checkpoint"
    except checkpoints.CheckpointError as exc:
        checkpoint_problem = str(exc)
    verdict = audit.verify_database(app.sessions, checkpoint)
    return render_template(
        "audit.html",
        events=events,
        verdict=verdict,
        checkpoint=checkpoint,
        checkpoint_problem=checkpoint_problem,
        args=request.args,
    )


EXPORTS = {
    "csv": ("text/csv", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "pdf": ("application/pdf", "pdf"),
}


@bp.get("/excursions/export.<fmt>")
@signed_in(*REVIEWERS)
def excursion_export(fmt: str) -> Response:
    from coldchain.reports import excursions as report

    if fmt not in EXPORTS:
        raise NotFoundError(f"no {fmt} export: csv, xlsx or pdf")
    mimetype, extension = EXPORTS[fmt]
    headers = {"Content-Disposition": f'attachment; filename="excursions.{extension}"'}
    filters = excursion_filters(request.args)
    if fmt == "csv":
        # Streamed, a batch of rows at a time: the log may be any size.
        chunks = report.excursions_csv_chunks(
            sessions=ctx().sessions, principal=current_user(), filters=filters
        )
        return Response(stream_with_context(chunks), mimetype=mimetype, headers=headers)
    # A workbook or a PDF is built whole, in memory (see coldchain.reports.excursions).
    rows = shipments.list_excursions(
        sessions=ctx().sessions, principal=current_user(), filters=filters, limit=None, offset=0
    )
    if fmt == "xlsx":
        body = report.excursions_xlsx(rows)
    else:
        body = report.excursions_pdf(rows, title="coldchain excursion log")
    return Response(body, mimetype=mimetype, headers=headers)


@bp.get("/shipments/<int:shipment_id>/report.pdf")
@signed_in(*REVIEWERS)
def shipment_report(shipment_id: int) -> Response:
    from coldchain.reports import pdf

    app = ctx()
    built = pdf.build_shipment_report(
        sessions=app.sessions,
        shipment_id=shipment_id,
        principal=current_user(),
        profiles=app.settings.profiles,
    )
    return Response(
        pdf.shipment_report_pdf(built),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="shipment-{shipment_id}-report.pdf"'
        },
    )
