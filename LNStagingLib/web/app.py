"""The review page: trame-slicer views (rendered on the server) + the review panel, bound to a ReviewSession.

Layout: axial view large on the left, coronal and sagittal stacked on the right; the panel on the left holds the
case chooser, the patient probability, the operating point, the overlay, the candidate list (sorted by probability,
click a name to jump, accept/reject), contour correction (paint/erase with undo) and export/downloads.
HTTP routes beside the page: ``/lnstaging/status.json`` (what the session shows: slice offsets, decisions, voxel
counts) and ``/lnstaging/download/<file>`` (the reviewed gtv_ln.nii.gz, review.json, the exported RTSTRUCT).
Everything the page loads comes from this server (trame's client bundle, vuetify, icons): nothing from a CDN.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Optional

from .. import NOT_FOR_CLINICAL_USE, __version__
from ..errors import LNStagingError
from . import security, validation
from .cases import ReviewCase
from .session import CT_PRESETS, RTSTRUCT_NAME, ReviewSession
from .timing import ServerTimings
from .keyboard import KEYBOARD_SCRIPT, SHORTCUTS

log = logging.getLogger(__name__)

VIEW_TITLES = {"Red": "Axial", "Green": "Coronal", "Yellow": "Sagittal"}
DOWNLOADS = {"gtv_ln.nii.gz": "review", "review.json": "review", "report.html": "review", RTSTRUCT_NAME: "export"}
TITLE = "LNStaging review"
# One JPEG quality for every frame. trame-rca's default renders each change twice, a quality-50 frame and 5 frame
# periods later a quality-90 one; on 2 loaded cores a render of the three views outlasts those periods, so the second
# round ran at once and held back the delivery of the first (docs/PERFORMANCE.md: 6 renders per jump, now 3).
FRAME_JPEG_QUALITY = 90  # = trame-rca's still quality: equal qualities make its scheduler render once per change
# Frame rate of a view the mouse is not over (trame-slicer's default 10): during a brush stroke in the axial view the
# coronal and sagittal views re-rendered at every step of the stroke; their first frame after a change is not delayed.
UNFOCUSED_VIEW_FPS = 4.0
MODEL_SLICE_MANAGER = "vtkMRMLModelSliceDisplayableManager"
PAGE_CSS = """
#candidates td, #candidates th { padding: 0 6px !important; font-variant-numeric: tabular-nums; }
#candidates tr.operating-line td { border-top: 3px dashed #29b6f6 !important; }
.view-label { position: absolute; color: #ffd54f; font: bold 13px sans-serif; text-shadow: 0 0 3px #000;
              pointer-events: none; z-index: 2; }
"""


def _fmt(value, digits=2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def candidate_row(c, *, visible: bool, threshold: float, moved: dict) -> dict:
    """One row of the candidate table as the page shows it. SUVpeak (mean SUV in a 1 ml sphere, PERCIST) beside
    SUVmax: the PET candidates are found and ranked by it; '–' where it was not measured (a stage-1 or file
    candidate without a PET lesion)."""
    return {
        "id": c.id, "name": c.name, "rank": c.rank, "p": _fmt_p(c.probability), "volume": _fmt(c.volume_ml, 2),
        "short": _fmt(c.short_axis_mm, 1), "short_flag": bool(c.short_axis_mm and c.short_axis_mm >= 10.0),
        "suv": _fmt(c.suv_max, 1), "suv_peak": _fmt(c.suv_peak, 1), "review": c.review, "visible": visible,
        "source": c.source, "below": c.probability is not None and c.probability < threshold,
        "moved": f"{moved[str(c.id)]:+.2f}" if abs(moved.get(str(c.id), 0.0)) >= 0.005 else "",
    }


@functools.lru_cache(maxsize=32)
def _catalogue_domain(model_id) -> str:
    """'phantom (synthetic) data' for the demo weights: where a model applies, from the model catalogue."""
    try:
        from ..models.catalogue import Catalogue

        data = Catalogue.read().get(str(model_id)).training_data
    except Exception:  # a model given as a file is not in the catalogue: nothing to say
        return ""
    kind, dataset = data.get("kind", ""), data.get("dataset", "")
    if kind == "synthetic" or "phantom" in str(dataset):
        return "PHANTOM data (synthetic): figures do not hold on patients"
    return str(dataset or kind)


def _direction_letter(ras) -> str:
    """The patient direction a RAS vector points to most: R/L, A/P, S/I."""
    axis = max(range(3), key=lambda a: abs(ras[a]))
    return ("RL", "AP", "SI")[axis][0 if ras[axis] > 0 else 1]


def _fmt_p(p) -> str:
    """A probability with enough digits to tell the small ones apart (never '0.00' for 7e-05)."""
    if p is None or p != p:
        return "–"
    if p >= 0.01:
        return f"{p:.3f}"
    return "<0.001" if p < 0.001 else f"{p:.4f}"


class ReviewApp:
    """Builds the server, the slicer scene, the views and the page for ``cases``."""

    def __init__(self, cases: list[ReviewCase], token: Optional[str] = None, server=None, rescore_model=None,
                 reviewer: str = "", read_only: bool = False):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        from .vtk_messages import RESIZE_EVENT_DEPRECATION, vtk_messages_without

        self.server = server or get_server("lnstaging_review", client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state, self.ctrl = self.server.state, self.server.controller
        self.token = token
        self.host = "127.0.0.1"  # set by start(); the Host/Origin check allows it
        self.secret = security.new_secret()
        security.use_secret(self.server, self.secret)  # not wslink's public default
        security.limit_message_size(self.server)  # websocket frames; limit_connections does the rest at bind
        self.slicer_app = SlicerApp()
        self._views: dict = {}  # view id -> slice view, for the titles, orientation letters and scale bars
        register_rca_factories(self.slicer_app.view_manager, self.server,
                               slice_view_ui_f=lambda server, view_id, view: _slice_view_overlay(server, view_id, view,
                                                                                                  self._views),
                               interactive_quality=FRAME_JPEG_QUALITY, blur_fps=UNFOCUSED_VIEW_FPS)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        axial, coronal, sagittal = (ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                                    ViewLayoutDefinition.sagittal_view())
        with vtk_messages_without(RESIZE_EVENT_DEPRECATION):  # after SlicerApp(), which sets VTK's output window
            self.layout_manager.register_layout(  # creates the slice views
                "review", Layout(LayoutDirection.Horizontal, [axial, Layout(LayoutDirection.Vertical, [coronal, sagittal])],
                                 flex_sizes=["2", "1"]))
            self.layout_manager.set_layout("review")  # creates the slice views (and their slice nodes) now
        _drop_model_slice_manager()
        self.timings = ServerTimings()
        for view in self.slicer_app.view_manager.get_slice_views():
            name = view.get_view_node().GetName()
            self.timings.observe_render_window(VIEW_TITLES.get(name, name).lower(), view.render_window())
        self.session = ReviewSession(self.slicer_app, cases, on_change=self.push_state,
                                     rescore_model=rescore_model, clock=self.timings.actions,
                                     reviewer=validation.reviewer(reviewer), read_only=read_only)
        self._init_state(cases)
        self._build_ui()
        self._bind_changes()
        self.ctrl.on_server_bind.add(self._bind_http)
        self._observe_views()
        for node in self._slice_nodes():
            node.AddObserver("ModifiedEvent", lambda *_: self._push_slice_text())
        self.session.open_case(sorted(c.case_id for c in cases)[0])

    # ---- state -----------------------------------------------------------------------------------------------
    def _init_state(self, cases: list[ReviewCase]) -> None:
        s = self.state
        s.trame__title = TITLE
        s.disclaimer, s.version = NOT_FOR_CLINICAL_USE, __version__
        s.case_items = [c.case_id for c in sorted(cases, key=lambda c: c.case_id)]
        s.case_id = s.case_items[0]
        s.candidates, s.selected_id = [], None
        s.threshold, s.show_rejected = 0.5, False
        s.overlay, s.overlay_opacity = "pet", 0.5
        s.tool, s.brush_mm = "none", 6.0
        s.can_undo = s.can_redo = False
        s.patient_text = s.slice_text = s.saved_text = s.message = ""
        s.export_disabled_reason, s.has_attention, s.has_export = "", False, False
        s.export_state, s.export_summary, s.pending_rows, s.confirm_pending = "none", "", [], False
        s.message_ok, s.help_open, s.busy = False, False, 0
        s.shortcuts = [{"keys": k, "action": a} for k, a in SHORTCUTS]
        s.ct_presets, s.ct_preset = list(CT_PRESETS), "soft tissue"
        s.pet_lower, s.pet_upper, s.has_pet = 2.0, 10.0, False
        s.cursor_text, s.counts_text, s.provenance_text, s.operating_text = "", "", "", ""
        s.view_info = {}
        s.rescoring, s.rescoring_available = True, False
        s.reviewer = ""
        s.other_findings = []

    def push_state(self) -> None:
        """Copy what the session shows into the page state (called by the session after every change)."""
        session, s = self.session, self.state
        if session.review is None:
            return
        visible = session.review.visible_ids()
        threshold = session.review.threshold
        rescoring = session.rescoring_status()
        moved = rescoring.get("moved", {}) if rescoring.get("enabled") else {}
        s.candidates = [candidate_row(c, visible=c.id in visible, threshold=threshold, moved=moved)
                        for c in session.ranked_candidates()]
        s.rescoring_available, s.rescoring = rescoring["available"], rescoring["enabled"]
        rows = s.candidates
        s.operating_index = next((k for k, row in enumerate(rows) if row["below"]), len(rows))
        decisions = [c.review for c in session.review.results.candidates]
        hidden = sum(1 for row in rows if row["review"] == "pending" and not row["visible"])
        s.counts_text = (f"{decisions.count('accepted')} accepted · {decisions.count('pending')} pending "
                         f"({hidden} hidden) · {decisions.count('rejected')} rejected")
        s.operating_text = self._operating_text()
        export_state, summary = session.export_state()
        s.export_state, s.export_summary = export_state, summary
        s.pending_rows = [dict(r, p=_fmt_p(r["probability"])) for r in session.pending_to_confirm()]
        s.ct_preset = session.ct_preset
        s.pet_lower, s.pet_upper = session.pet_window
        s.has_pet = session.review.pet is not None
        s.provenance_text = self._provenance_text()
        s.selected_id = session.selected_id
        s.reviewer = session.review.reviewer
        s.other_findings = other_finding_items(session.review.results)
        s.case_id = session.case.case_id
        s.threshold = session.review.threshold
        s.show_rejected = session.review.show_rejected
        s.overlay, s.overlay_opacity, s.tool = session.overlay, session.overlay_opacity, session.tool
        s.brush_mm = session.brush_mm  # a refused value on the page is replaced by the session's
        s.has_attention = session.review.attention is not None
        s.can_undo, s.can_redo = bool(session.undo_stack.can_undo()), bool(session.undo_stack.can_redo())
        probability = session.review.results.patient.metastasis_probability
        s.patient_text = ("Patient metastasis probability: " + _fmt(probability) if probability is not None else
                          "Patient metastasis probability: not computed for this run")
        s.saved_text = (f"All changes saved {time.strftime('%H:%M:%S', time.localtime(session.saved_at))} "
                        f"to {session.case.review_dir}" if session.saved_at else "")
        s.export_disabled_reason = session.case.export_disabled_reason()
        s.has_export = export_state != "none"
        if session.last_error:
            s.message, s.message_ok = session.last_error, False
        self._push_slice_text(flush=False)
        s.flush()

    def _push_slice_text(self, flush: bool = True) -> None:
        offsets = self.session.slice_offsets()
        labels = (("axial", "S"), ("coronal", "P"), ("sagittal", "L"))
        text = " · ".join(f"{view} {offsets[view]:.1f} mm" for view, _ in labels if view in offsets)
        info = self._view_info()
        changed = text != self.state.slice_text or info != self.state.view_info
        if changed:
            self.state.slice_text, self.state.view_info = text, info
            if flush:
                self.state.flush()

    def _view_info(self) -> dict:
        """Title, orientation letters (from each view's slice-to-RAS axes) and a scale bar per slice view."""
        out = {}
        for view_id, view in self._views.items():
            node = view.get_view_node()
            if node is None:
                continue
            m = node.GetSliceToRAS()
            right = [m.GetElement(r, 0) for r in range(3)]
            up = [m.GetElement(r, 1) for r in range(3)]
            fov, dims = node.GetFieldOfView(), node.GetDimensions()
            mm_per_px = fov[0] / max(dims[0], 1)
            bar_mm = next((b for b in (5, 10, 20, 50, 100, 200) if b / mm_per_px >= 60), 200) if mm_per_px > 0 else 0
            out[str(view_id)] = {
                "title": VIEW_TITLES.get(node.GetName(), node.GetName()),
                "right": _direction_letter(right), "left": _direction_letter([-v for v in right]),
                "top": _direction_letter(up), "bottom": _direction_letter([-v for v in up]),
                "bar_mm": bar_mm, "bar_px": round(bar_mm / mm_per_px) if mm_per_px > 0 else 0}
        return out

    def _slice_nodes(self) -> list:
        return [view.get_view_node() for view in self.slicer_app.view_manager.get_slice_views()]

    # ---- mouse in the views: values under the cursor, click a contour, Shift+drag window/level ------------------
    def _observe_views(self) -> None:
        self._press = None
        self._window_drag = None
        for view in self.slicer_app.view_manager.get_slice_views():
            interactor = view.interactor()
            for event, handler in (("MouseMoveEvent", self._on_mouse_move), ("LeftButtonPressEvent", self._on_press),
                                   ("LeftButtonReleaseEvent", self._on_release)):
                tag = interactor.AddObserver(event, lambda obj, _e, v=view, h=handler: h(obj, v), 10.0)
                view._lns_tags = getattr(view, "_lns_tags", {}) | {event: tag}

    def _abort(self, interactor, view, event) -> None:
        command = interactor.GetCommand(view._lns_tags[event])
        if command is not None:
            command.SetAbortFlag(1)

    def _ras_at(self, interactor, view):
        x, y = interactor.GetEventPosition()
        node = view.get_view_node()
        ras = node.GetXYToRAS().MultiplyPoint((float(x), float(y), 0.0, 1.0))
        return ras[:3]

    def _on_mouse_move(self, interactor, view) -> None:
        if self.session.review is None:
            return
        if self._window_drag is not None:
            x0, y0, window, level = self._window_drag
            x, y = interactor.GetEventPosition()
            display = self.session.review.ct.GetDisplayNode()
            display.SetWindowLevel(max(1.0, window + 4.0 * (x - x0)), level - 2.0 * (y - y0))
            self._abort(interactor, view, "MouseMoveEvent")
            return
        values = self.session.values_at(self._ras_at(interactor, view))
        parts = []
        if values["hu"] is not None:
            parts.append(f"CT {values['hu']:.0f} HU")
        if values["suv"] is not None:
            parts.append(f"PET SUV {values['suv']:.2f}")
        if values["candidate"]:
            parts.append(f"GTVn_{values['candidate']:02d}")
        text = " · ".join(parts)
        if text != self.state.cursor_text:
            self.state.cursor_text = text
            self.state.flush()

    def _on_press(self, interactor, view) -> None:
        if self.session.review is None:
            return
        if interactor.GetShiftKey() and self.session.tool == "none":
            window, level = self.session.ct_window()
            self._window_drag = (*interactor.GetEventPosition(), window, level)
            self._abort(interactor, view, "LeftButtonPressEvent")
            return
        self._press = interactor.GetEventPosition()

    def _on_release(self, interactor, view) -> None:
        if self._window_drag is not None:
            self._window_drag = None  # the preset buttons and keys 1-4 set a preset window again
            self._abort(interactor, view, "LeftButtonReleaseEvent")
            return
        press, self._press = self._press, None
        if press is None or self.session.tool != "none" or self.session.review is None:
            return
        x, y = interactor.GetEventPosition()
        if abs(x - press[0]) + abs(y - press[1]) > 3:
            return  # a drag (pan), not a click
        ras = self._ras_at(interactor, view)
        candidate = self.session.values_at(ras)["candidate"]
        if candidate and candidate in {c.id for c in self.session.review.results.candidates}:
            self.select(candidate)
        else:  # elsewhere: the linked crosshair moves the other views to the point clicked
            self._guard(self.session.link_views, ras, view.get_view_node().GetName(), name="link views")

    # ---- actions from the page -------------------------------------------------------------------------------
    def _guard(self, action, *args, name: Optional[str] = None) -> None:
        """Run a page action; a refused or failed one shows its message and the page state is reset from the
        session (the values in ``args`` come from the page unchecked: the session validates them). Its time is
        recorded under ``name`` (status.json "timings")."""
        try:
            with self.timings.actions.measure(name or getattr(action, "__name__", "action")):
                action(*args)
            self.state.message, self.state.message_ok = "", False
        except LNStagingError as error:
            self.state.message, self.state.message_ok = str(error), False
        except Exception as error:  # shown on the page and logged: a failed action must not end the session
            log.exception("review action failed")
            self.state.message = f"Internal error ({type(error).__name__}: {error}); your saved review is unchanged."
            self.state.message_ok = False
        self.push_state()

    def select(self, candidate_id) -> None:
        self._guard(self.session.select, candidate_id)

    def accept(self, candidate_id) -> None:
        self._guard(self.session.set_review, candidate_id, "accepted")

    def reject(self, candidate_id) -> None:
        self._guard(self.session.set_review, candidate_id, "rejected")

    def reset_decision(self, candidate_id) -> None:
        self._guard(self.session.set_review, candidate_id, "pending")

    def undo(self) -> None:
        self._guard(self.session.undo)

    def redo(self) -> None:
        self._guard(self.session.redo)

    def export(self, include_pending=False) -> None:
        """Accepted nodes only, unless the reviewer confirmed the listed pending nodes (``include_pending``)."""
        self.state.confirm_pending = False
        self._guard(lambda: self.session.export_rtstruct(validation.flag(include_pending, "include pending")))

    def on_key(self, action) -> None:
        """A keyboard shortcut (web/keyboard.py) on the selected candidate or the views."""
        session = self.session
        if session.review is None or not isinstance(action, str):
            return
        selected = session.selected_id
        actions = {
            "next": lambda: session.step_candidate(+1), "previous": lambda: session.step_candidate(-1),
            "accept": lambda: selected is not None and session.set_review(selected, "accepted"),
            "reject": lambda: selected is not None and session.set_review(selected, "rejected"),
            "reset": lambda: selected is not None and session.set_review(selected, "pending"),
            "undo": session.undo, "redo": session.redo,
            "slice_up": lambda: session.step_slice(+1), "slice_down": lambda: session.step_slice(-1),
            "overlay": session.toggle_overlay, "reset_zoom": session.reset_zoom,
        }
        if action in actions:
            self._guard(actions[action], name=f"key {action}")
        elif action.startswith("preset:"):
            self._guard(session.set_ct_preset, action.split(":", 1)[1], name="key preset")

    def _operating_text(self) -> str:
        review = self.session.review
        point = review.results.patient.operating_point or {}
        text = f"Operating point: p ≥ {review.threshold:.2f}"
        fp = point.get("fp_per_patient")
        if fp is None and review.froc:
            import numpy as np

            pairs = sorted((float(t), float(f)) for f, t in review.froc)
            fp = float(np.interp(review.threshold, [t for t, _ in pairs], [f for _, f in pairs]))
        model = (review.results.provenance.get("models", {}).get("cls") or {}).get("id")
        if fp is not None:
            text += f" · expected {float(fp):.2f} false positives per patient"
            text += f" (validation FROC of {model})" if model else " (validation FROC)"
        return text

    def _provenance_text(self) -> str:
        """Case id, study date, model ids with sha256 prefix and training domain: what the reader is looking at."""
        session = self.session
        parts = [f"Case {session.case.case_id}"]
        date = session.case.study_date()
        if date:
            parts.append(f"study {date}")
        models = session.review.results.provenance.get("models", {})
        for stage, info in models.items():
            if isinstance(info, dict):
                text = f"{stage}: {info.get('id', '?')} (sha256 {str(info.get('sha256', ''))[:8]})"
                domain = info.get("training_domain") or _catalogue_domain(info.get("id"))
                if domain:
                    text += f", trained on {domain}"
                parts.append(text)
        if not models:
            parts.append("no trained model recorded for this run")
        return " · ".join(parts)

    def _bind_changes(self) -> None:
        @self.state.change("case_id")
        def on_case(case_id, **_):
            if self.session.case is not None and case_id != self.session.case.case_id:
                self._guard(self.session.open_case, case_id)

        @self.state.change("threshold")
        def on_threshold(threshold, **_):
            if self.session.review is not None and threshold != self.session.review.threshold:
                self._guard(self.session.set_threshold, threshold)

        @self.state.change("show_rejected")
        def on_show_rejected(show_rejected, **_):
            if self.session.review is not None and show_rejected != self.session.review.show_rejected:
                self._guard(self.session.set_show_rejected, show_rejected)

        @self.state.change("rescoring")
        def on_rescoring(rescoring, **_):
            if self.session.review is not None and rescoring != self.session.rescoring_enabled:
                self._guard(self.session.set_rescoring, rescoring)

        @self.state.change("overlay", "overlay_opacity")
        def on_overlay(overlay, overlay_opacity, **_):
            if self.session.review is None:
                return
            if overlay != self.session.overlay:
                self._guard(self.session.set_overlay, overlay, overlay_opacity)
            elif overlay_opacity != self.session.overlay_opacity:
                self._guard(self.session.set_overlay_opacity, overlay_opacity)

        @self.state.change("reviewer")
        def on_reviewer(reviewer, **_):
            if self.session.review is not None and reviewer != self.session.review.reviewer:
                self._guard(self.session.set_reviewer, reviewer)

        @self.state.change("ct_preset")
        def on_preset(ct_preset, **_):
            if self.session.review is not None and ct_preset != self.session.ct_preset:
                self._guard(self.session.set_ct_preset, ct_preset)

        @self.state.change("pet_lower", "pet_upper")
        def on_pet_window(pet_lower, pet_upper, **_):
            if self.session.review is not None and (pet_lower, pet_upper) != self.session.pet_window:
                self._guard(self.session.set_pet_window, pet_lower, pet_upper)

        self.server.trigger("lns_key")(self.on_key)
        self.server.trigger("lns_select")(self.select)
        self.server.trigger("lns_accept")(self.accept)
        self.server.trigger("lns_reject")(self.reject)
        self.server.trigger("lns_reset")(self.reset_decision)
        self.server.trigger("lns_export")(self.export)

        @self.state.change("tool", "brush_mm")
        def on_tool(tool, brush_mm, **_):
            if self.session.review is not None:
                self._guard(self.session.set_tool, tool, brush_mm)

    # ---- HTTP routes -----------------------------------------------------------------------------------------
    def _bind_http(self, wslink_server) -> None:
        from aiohttp import web

        app = wslink_server.app
        app.middlewares.append(security.origin_host_middleware(self.host))  # first: DNS rebinding, foreign pages
        if self.token:
            app.middlewares.append(security.token_middleware(self.token))
        app.router.add_post("/paraview/", security.launcher_handler(self.secret))  # trame's client gets the secret
        security.limit_connections(wslink_server)  # message cap, idle/partial connection timeouts

        async def status(request):
            extra = {"version": __version__, "disclaimer": NOT_FOR_CLINICAL_USE, "timings": self.timings.as_dict()}
            if "ras" in request.query and self.session.review is not None:  # ?ras=R,A,S: where the views draw it
                try:
                    ras = [validation.coordinate(float(v)) for v in request.query["ras"].split(",")]
                except (ValueError, LNStagingError):
                    raise web.HTTPBadRequest(text="ras must be three numbers: R,A,S in mm") from None
                if len(ras) != 3:
                    raise web.HTTPBadRequest(text="ras must be three numbers: R,A,S in mm")
                extra["point_views"] = self.session.view_positions(ras)
            return web.json_response(self.session.status() | extra)

        async def download(request):
            name = request.match_info["name"]
            case = self.session.case
            if name not in DOWNLOADS or case is None:
                raise web.HTTPNotFound(text="no such file")
            if name == "report.html" and not self.session.read_only:
                self.session.write_report()  # regenerated from the review as it is now (read-only: as last written)
            elif DOWNLOADS[name] == "review":
                self.session.flush()
            elif self.session.export_state()[0] == "stale":
                raise web.HTTPConflict(text="The RTSTRUCT is out of date: the review changed after it was exported. "
                                            "Export again, then download.")
            folder = case.review_dir if DOWNLOADS[name] == "review" else case.export_dir
            path = folder / name
            if not path.is_file():
                raise web.HTTPNotFound(text=f"{name} does not exist yet")
            return web.FileResponse(path, headers={
                "Content-Disposition": f'attachment; filename="{case.case_id}_{name}"'})

        app.router.add_get("/lnstaging/status.json", status)
        app.router.add_get("/lnstaging/download/{name}", download)

    # ---- page ------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        from trame.widgets import client, html
        from trame.widgets import vuetify3 as v
        from trame_vuetify.ui.vuetify3 import SinglePageWithDrawerLayout

        with SinglePageWithDrawerLayout(self.server, theme="dark") as layout:
            self.ui = layout
            client.Script(KEYBOARD_SCRIPT)
            client.Style(PAGE_CSS)
            layout.title.set_text(TITLE)
            layout.drawer.width = 470
            with layout.toolbar:
                v.VProgressCircular(indeterminate=True, size=22, width=3, color="info", v_show="busy > 0",
                                    id="busy", classes="mx-2", aria_label="working")
                html.Div("{{ provenance_text }}", id="provenance", classes="text-caption mx-2 text-truncate",
                         style="max-width: 55vw", title=("provenance_text",))
                v.VSpacer()
                html.Div("{{ disclaimer }}", id="disclaimer", classes="text-warning font-weight-bold mx-4")
                v.VBtn(icon="mdi-keyboard", size="small", variant="text", id="help-button", click="help_open = !help_open",
                       title="Keyboard shortcuts (?)", aria_label="Keyboard shortcuts")
            with layout.drawer:
                with html.Div(classes="pa-3 d-flex flex-column", style="gap: 6px; font-size: 0.9rem"):
                    with html.Div(id="case-chooser", v_show="case_items.length > 1"):
                        v.VSelect(label="Case", id="case-select", v_model=("case_id",), items=("case_items",),
                                  density="compact", hide_details=True)
                    v.VTextField(model_value=("reviewer",), change="reviewer = $event.target.value",
                                 label="Reviewer (saved with each decision, UTC time)", density="compact",
                                 hide_details=True, id="reviewer", maxlength=64, aria_label="Reviewer name")
                    html.Div("{{ patient_text }}", id="patient-probability", classes="text-subtitle-1")
                    html.Div("{{ operating_text }}", id="operating-point")
                    with html.Div(id="drawer-threshold"):
                        v.VSlider(v_model=("threshold",), min=0, max=1, step=0.01, density="compact",
                                  hide_details=True, id="threshold", aria_label="Operating point (probability threshold)")
                    v.VCheckbox(v_model=("show_rejected",), label="Show rejected", density="compact",
                                hide_details=True)
                    v.VCheckbox(v_model=("rescoring",), label="Re-score pending nodes from my decisions",
                                density="compact", hide_details=True, id="rescoring", v_show="rescoring_available")
                    self._view_controls(html, v)
                    html.Div("{{ slice_text }}", id="slice-positions", classes="text-caption")
                    html.Div("{{ cursor_text }}", id="cursor-values", classes="text-caption font-weight-medium",
                             style="min-height: 1.2em")
                    self._candidate_table(html, v)
                    self._other_findings(html, v)
                    self._edit_tools(html, v)
                    self._export_tools(html, v)
                    html.Div("{{ saved_text }}", id="saved", classes="text-caption text-medium-emphasis")
                    html.Div("{{ message }}", id="message", v_show="message",
                             classes=("message_ok ? 'text-success' : 'text-error'",))
            layout.footer.clear()
            with layout.footer:
                html.Div("LNStaging {{ version }} · {{ disclaimer }}", classes="text-caption")
            with layout.content:
                with html.Div(classes="fill-height d-flex flex-row flex-grow-1", id="views"):
                    self.layout_manager.initialize_layout_grid(layout)
                self._help_panel(html, v)
                self._pending_dialog(html, v)

    def _view_controls(self, html, v) -> None:
        with v.VRow(dense=True, align="center", classes="ma-0", style="gap: 6px"):
            html.Span("CT window", classes="mr-1")
            with v.VBtnToggle(v_model=("ct_preset",), density="compact", mandatory=True, id="ct-presets"):
                for k, name in enumerate(CT_PRESETS, start=1):
                    v.VBtn(name, value=name, size="small", id=f"preset-{name.replace(' ', '-')}",
                           title=f"{name} window ({k})",  # a click applies it, also after a mouse window/level
                           click=f"window.lnsTrigger('lns_key', ['preset:{name}'])")
            v.VBtn(icon="mdi-fit-to-screen-outline", size="small", variant="text", id="reset-zoom",
                   click="window.lnsTrigger('lns_key', ['reset_zoom'])", title="Reset zoom (F)", aria_label="Reset zoom")
        with v.VRow(dense=True, align="center", classes="ma-0"):
            html.Span("Overlay", classes="mr-2")
            with v.VBtnToggle(v_model=("overlay",), density="compact", mandatory=True, id="overlay"):
                v.VBtn("PET", value="pet", id="overlay-pet", size="small", title="PET SUV heat map (O toggles)")
                v.VBtn("Attention", value="attention", id="overlay-attention", size="small",
                       disabled=("!has_attention",), title="Model attention map")
                v.VBtn("None", value="none", id="overlay-none", size="small", title="CT only (O toggles)")
        v.VSlider(v_model=("overlay_opacity",), min=0, max=1, step=0.05, label="Opacity", density="compact",
                  hide_details=True, id="overlay-opacity", aria_label="Overlay opacity")
        with html.Div(v_show="has_pet", id="pet-window"):
            v.VRangeSlider(model_value=("[pet_lower, pet_upper]",), min=0, max=30, step=0.5, density="compact",
                           hide_details=True, label="PET SUV", thumb_label=True, id="pet-range",
                           update_modelValue="pet_lower = $event[0]; pet_upper = $event[1]",
                           aria_label="PET SUV window")
            with html.Div(classes="d-flex align-center", style="gap: 6px", id="colour-bar"):
                html.Span("SUV {{ Number(pet_lower).toFixed(1) }}", classes="text-caption")
                html.Div(classes="flex-grow-1", style="height: 10px; border: 1px solid #888; background: "
                         "linear-gradient(to right, #000, #700, #e00, #f80, #ff0, #fff)")
                html.Span("{{ Number(pet_upper).toFixed(1) }}", classes="text-caption")

    def _candidate_table(self, html, v) -> None:
        html.Div("Candidates (most probable first; click a name or a contour to jump)", classes="text-subtitle-2 mt-2")
        html.Div("{{ counts_text }} · dashed blue line = operating point", id="counts", classes="text-caption")
        with v.VTable(density="compact", fixed_header=True, height="38vh", id="candidates"):
            with html.Thead():
                with html.Tr():
                    for title, tip in (("Name", "RT structure name"), ("p", "metastasis probability"),
                                       ("SA (mm)", "short axis; bold when >= 10 mm"), ("SUVmax", "maximum SUV"),
                                       ("SUVpeak", "mean SUV in a 1 ml sphere (PERCIST); PET candidates"),
                                       ("Vol (ml)", "volume"), ("Decision", "accept / reject / reset")):
                        html.Th(title, title=tip)
            with html.Tbody():
                with html.Tr(v_for="(c, i) in candidates", key="c.id",
                             classes=("{'bg-grey-darken-3': c.id === selected_id, 'text-disabled': !c.visible, "
                                      "'operating-line': i === operating_index && i > 0}",),
                             title=("i === operating_index ? 'operating point p = ' + Number(threshold).toFixed(2) + "
                                    "': from here down, hidden unless accepted' : ''",)):
                    html.Td("{{ c.name }}", id=("'cand-' + c.id",), style="cursor: pointer; text-decoration: underline",
                            click="window.lnsTrigger('lns_select', [c.id])")
                    with html.Td(id=("'p-' + c.id",)):
                        html.Span("{{ c.p }}", id=("'pv-' + c.id",))
                        html.Span(" ({{ c.moved }})", v_show="c.moved", classes="text-caption text-info",
                                  id=("'moved-' + c.id",))
                    html.Td("{{ c.short }}", classes=("c.short_flag ? 'font-weight-bold text-warning' : ''",))
                    html.Td("{{ c.suv }}")
                    html.Td("{{ c.suv_peak }}", id=("'peak-' + c.id",))
                    html.Td("{{ c.volume }}")
                    with html.Td(classes="text-no-wrap"):
                        v.VBtn(icon="mdi-check", size="x-small",
                               variant=("c.review === 'accepted' ? 'flat' : 'text'",), color="success",
                               id=("'accept-' + c.id",), click="window.lnsTrigger('lns_accept', [c.id])",
                               title="Accept (A)", aria_label=("'Accept ' + c.name",))
                        v.VBtn(icon="mdi-close", size="x-small",
                               variant=("c.review === 'rejected' ? 'flat' : 'text'",), color="error",
                               id=("'reject-' + c.id",), click="window.lnsTrigger('lns_reject', [c.id])",
                               title="Reject (R)", aria_label=("'Reject ' + c.name",))
                        v.VBtn(icon="mdi-undo-variant", size="x-small", variant="text",
                               v_show="c.review !== 'pending'", id=("'reset-' + c.id",),
                               click="window.lnsTrigger('lns_reset', [c.id])", title="Reset to pending (Backspace)",
                               aria_label=("'Reset ' + c.name",))
                        html.Span("{{ c.review === 'pending' ? '' : c.review }}", classes="text-caption",
                                  id=("'state-' + c.id",))

    def _other_findings(self, html, v) -> None:
        """Collapsed: PET lesions not in the node list (other_findings.csv), one line each with its reason."""
        with v.VExpansionPanels(v_show="other_findings.length", id="other-findings", density="compact"):
            with v.VExpansionPanel():
                v.VExpansionPanelTitle("Other findings, not in the node list ({{ other_findings.length }})",
                                       classes="text-caption")
                with v.VExpansionPanelText():
                    html.Div("{{ f }}", v_for="(f, i) in other_findings", key="i", classes="text-caption")

    def _edit_tools(self, html, v) -> None:
        html.Div("Correct the selected node's contour", classes="text-subtitle-2 mt-2")
        with v.VRow(dense=True, align="center"):
            with v.VBtnToggle(v_model=("tool",), density="compact", mandatory=True, id="tools"):
                v.VBtn("None", value="none", id="tool-none", title="Navigate: click a contour to select its node")
                v.VBtn("Paint", value="paint", id="tool-paint", prepend_icon="mdi-brush", title="Paint the selected node")
                v.VBtn("Erase", value="erase", id="tool-erase", prepend_icon="mdi-eraser", title="Erase from the selected node")
            v.VBtn(icon="mdi-undo", size="small", variant="text", disabled=("!can_undo",), click=self.undo, id="undo",
                   title="Undo (Ctrl+Z)", aria_label="Undo")
            v.VBtn(icon="mdi-redo", size="small", variant="text", disabled=("!can_redo",), click=self.redo, id="redo",
                   title="Redo (Ctrl+Y)", aria_label="Redo")
        v.VSlider(v_model=("brush_mm",), min=1, max=30, step=0.5, density="compact", hide_details=True,
                  label="Brush (mm)", thumb_label=True, id="brush", aria_label="Brush diameter in mm")

    def _export_tools(self, html, v) -> None:
        with html.Div(classes="d-flex flex-wrap mt-2", style="gap: 6px"):
            v.VBtn("Export RTSTRUCT (accepted)", id="export", size="small", color="primary",
                   disabled=("export_disabled_reason !== ''",), click="window.lnsTrigger('lns_export', [false])",
                   title="Write the accepted nodes as a DICOM RT Structure Set on the planning CT")
            v.VBtn("Include pending…", id="export-pending", size="small", variant="outlined",
                   disabled=("export_disabled_reason !== '' || pending_rows.length === 0",),
                   click="confirm_pending = true", title="List the pending nodes, then choose to export them too")
            v.VBtn("Download RTSTRUCT", id="download-rtstruct", size="small", v_show="has_export",
                   disabled=("export_state !== 'current'",), href=f"lnstaging/download/{RTSTRUCT_NAME}",
                   raw_attrs=[f'download="{RTSTRUCT_NAME}"'], prepend_icon="mdi-download",
                   title="The RTSTRUCT of the last export (refused when the review changed since)")
            v.VBtn("GTV_LN (NIfTI)", id="download-gtv", size="small", href="lnstaging/download/gtv_ln.nii.gz",
                   raw_attrs=['download="gtv_ln.nii.gz"'], prepend_icon="mdi-download",
                   title="The reviewed label map")
            v.VBtn("review.json", id="download-review", size="small", href="lnstaging/download/review.json",
                   raw_attrs=['download="review.json"'], prepend_icon="mdi-download", title="The decisions")
            v.VBtn("Report", id="download-report", size="small", href="lnstaging/download/report.html",
                   raw_attrs=['download="report.html"'], prepend_icon="mdi-file-document-outline",
                   title="One-page report of this review (print it to A4)")
        html.Div("{{ export_summary }}", id="export-summary", v_show="export_summary && export_state === 'current'",
                 classes="text-success font-weight-medium")
        html.Div("Export out of date: the review changed after it ({{ export_summary }}). Export again before "
                 "downloading.", id="export-stale", v_show="export_state === 'stale'", classes="text-warning")
        html.Div("{{ export_disabled_reason }}", id="export-reason", classes="text-caption text-warning",
                 v_show="export_disabled_reason")

    def _pending_dialog(self, html, v) -> None:
        with v.VDialog(v_model=("confirm_pending",), max_width=560):
            with v.VCard(id="pending-dialog"):
                v.VCardTitle("Include {{ pending_rows.length }} pending node(s) in the RTSTRUCT?")
                with v.VCardText():
                    html.Div("Nobody accepted or rejected these nodes. Nodes marked hidden are below the operating "
                             "point and were never shown in the images.", classes="mb-2")
                    with v.VTable(density="compact", height="300px", fixed_header=True):
                        with html.Thead():
                            with html.Tr():
                                html.Th("Name")
                                html.Th("p")
                                html.Th("")
                        with html.Tbody():
                            with html.Tr(v_for="r in pending_rows", key="r.id"):
                                html.Td("{{ r.name }}")
                                html.Td("{{ r.p }}")
                                html.Td("{{ r.hidden ? 'hidden' : '' }}", classes="text-warning")
                with v.VCardActions():
                    v.VBtn("Cancel", id="pending-cancel", click="confirm_pending = false")
                    v.VSpacer()
                    v.VBtn("Export accepted only", id="pending-accepted-only",
                           click="confirm_pending = false; window.lnsTrigger('lns_export', [false])")
                    v.VBtn("Export with these {{ pending_rows.length }} pending", id="export-pending-confirm",
                           color="warning", variant="flat",
                           click="confirm_pending = false; window.lnsTrigger('lns_export', [true])")

    def _help_panel(self, html, v) -> None:
        with v.VDialog(v_model=("help_open",), max_width=520):
            with v.VCard(id="help-panel"):
                v.VCardTitle("Keyboard shortcuts")
                with v.VCardText():
                    with v.VTable(density="compact"):
                        with html.Tbody():
                            with html.Tr(v_for="s in shortcuts", key="s.keys"):
                                html.Td("{{ s.keys }}", classes="font-weight-bold text-no-wrap")
                                html.Td("{{ s.action }}")
                    html.Div("In the views: left-drag with no tool pans the slice; click a contour to select its "
                             "node; click elsewhere to move the other views there (linked crosshair); the cyan ring "
                             "marks the selected candidate, even one hidden by the operating point.",
                             classes="text-caption mt-2")
                with v.VCardActions():
                    v.VSpacer()
                    v.VBtn("Close", click="help_open = false", id="help-close")

    # ---- running ---------------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> None:
        self.host = host
        self.server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0,
                          exec_mode="main")

    def shutdown(self) -> None:
        self.session.flush()


def _drop_model_slice_manager() -> None:
    """Slicer's model slice displayable manager draws models cut by the slice; this page shows none (nodes are
    segmentations, drawn by their own manager), yet it made every view render whenever any slice moved (the slice
    planes are models): a one-slice step in the axial view rendered all three. Unregistering it from the factory
    removes it from the views (docs/PERFORMANCE.md)."""
    import slicer

    factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
    if factory.IsDisplayableManagerRegistered(MODEL_SLICE_MANAGER):
        factory.UnRegisterDisplayableManager(MODEL_SLICE_MANAGER)


def _slice_view_overlay(server, view_id, view, views: dict) -> None:
    """Per slice view: trame-slicer's slice slider (without its 3D-view buttons: no 3D view here), the view title,
    the orientation letters at the four edges and a scale bar, from the ``view_info`` state (ReviewApp._view_info)."""
    import json

    from trame_client.widgets.html import Div, Span
    from trame_slicer.app.logic.slice_view_logic import connect_slice_view_slider_to_state
    from trame_slicer.app.ui.slider import Slider

    views[view_id] = view
    info = f"view_info['{json.dumps(str(view_id))[1:-1]}']"  # single quotes: it goes into attributes too
    Div(f"{{{{ {info} ? {info}.title : '' }}}}", classes="view-label", style="top: 4px; left: 8px;")
    for edge, style in (("left", "left: 4px; top: 50%;"), ("right", "right: 8px; top: 50%;"),
                        ("top", "top: 4px; left: 50%;"), ("bottom", "bottom: 30px; left: 50%;")):
        Div(f"{{{{ {info} ? {info}.{edge} : '' }}}}", classes=f"view-label orientation-{edge}", style=style)
    with Div(classes="view-label", style="bottom: 30px; right: 12px; text-align: center;", v_show=info):
        Div(style=(f"'width: ' + ({info} ? {info}.bar_px : 0) + 'px; height: 4px; background: #ffd54f; "
                   "border: 1px solid #000;'",))
        Span(f"{{{{ {info} ? {info}.bar_mm : '' }}}} mm")
    with Div(style="position: absolute; bottom: 0; left: 0; background-color: transparent; width: 100%;"):
        Slider(classes="slice-slider", typed_state=connect_slice_view_slider_to_state(server, view), theme="dark",
               dense=True)


def review_url(host: str, port: int, token: Optional[str]) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def other_finding_items(results) -> list[str]:
    """One line per PET lesion outside the node list: reason, volume, SUVmax, LPS position."""
    return [f"{f.get('reason', '')}: {float(f['mtv_ml']):.1f} ml, SUVmax {float(f['suv_max']):.1f} at x/y/z "
            f"{float(f['x']):.0f}/{float(f['y']):.0f}/{float(f['z']):.0f} mm" for f in (results.other_findings or [])]
