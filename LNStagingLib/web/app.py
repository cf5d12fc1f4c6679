"""The review page: trame-slicer views (rendered on the server) + the review panel, bound to a ReviewSession.

Layout: axial view large on the left, coronal and sagittal stacked on the right; the panel on the left holds the
case chooser, the patient probability, the operating point, the overlay, the candidate list (sorted by probability,
click a name to jump, accept/reject), contour correction (paint/erase with undo) and export/downloads.
HTTP routes beside the page: ``/lnstaging/status.json`` (what the session shows: slice offsets, decisions, voxel
counts) and ``/lnstaging/download/<file>`` (web/downloads.py: the reviewed GTV_LN, review.json, RTSTRUCT, SEG).
Everything the page loads comes from this server (trame's client bundle, vuetify, icons): nothing from a CDN.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from .. import NOT_FOR_CLINICAL_USE, __version__
from ..errors import LNStagingError
from . import mip, page_text, security, validation
from .cases import ReviewCase
from .downloads import DOWNLOADS
from .session import CT_PRESETS, ReviewSession
from .timing import ServerTimings
from .keyboard import SHORTCUTS
from .layout import TITLE, build_page, slice_view_overlay
from .page_text import candidate_row, fmt as _fmt, fmt_p as _fmt_p  # noqa: F401 (tests import them here)
from .render_pacing import pace_views

log = logging.getLogger(__name__)

VIEW_TITLES = {"Red": "Axial", "Green": "Coronal", "Yellow": "Sagittal"}
# One JPEG quality for every frame. trame-rca's default renders each change twice, a quality-50 frame and 5 frame
# periods later a quality-90 one; on 2 loaded cores a render of the three views outlasts those periods, so the second
# round ran at once and held back the delivery of the first (docs/PERFORMANCE.md: 6 renders per jump, now 3).
FRAME_JPEG_QUALITY = 90  # = trame-rca's still quality: equal qualities make its scheduler render once per change
# Frame rate of a view the mouse is not over (trame-slicer's default 10): during a brush stroke in the axial view the
# coronal and sagittal views re-rendered at every step of the stroke; their first frame after a change is not delayed.
UNFOCUSED_VIEW_FPS = 4.0
MODEL_SLICE_MANAGER = "vtkMRMLModelSliceDisplayableManager"


def _direction_letter(ras) -> str:
    """The patient direction a RAS vector points to most: R/L, A/P, S/I."""
    axis = max(range(3), key=lambda a: abs(ras[a]))
    return ("RL", "AP", "SI")[axis][0 if ras[axis] > 0 else 1]


class ReviewApp:
    """Builds the server, the slicer scene, the views and the page for ``cases``."""

    def __init__(self, cases: list[ReviewCase], token: Optional[str] = None, server=None, rescore_model=None,
                 reviewer: str = "", read_only: bool = False):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.app.ui import create_vertical_view_gutter_ui
        from trame_slicer.rca_view import RemoteSliceViewFactory, RemoteThreeDViewFactory
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
        # trame-slicer's register_rca_factories, keeping the slice factory: its views' renders are paced below
        frames = {"interactive_quality": FRAME_JPEG_QUALITY, "blur_fps": UNFOCUSED_VIEW_FPS}
        slice_factory = RemoteSliceViewFactory(
            self.server, populate_view_ui_f=lambda server, view_id, view: slice_view_overlay(server, view_id, view,
                                                                                             self._views), **frames)
        for factory in (slice_factory, RemoteThreeDViewFactory(self.server, **frames,
                                                                populate_view_ui_f=create_vertical_view_gutter_ui)):
            self.slicer_app.view_manager.register_factory(factory)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        axial, coronal, sagittal = (ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                                    ViewLayoutDefinition.sagittal_view())
        with vtk_messages_without(RESIZE_EVENT_DEPRECATION):  # after SlicerApp(), which sets VTK's output window
            self.layout_manager.register_layout(  # creates the slice views
                "review", Layout(LayoutDirection.Horizontal, [axial, Layout(LayoutDirection.Vertical, [coronal, sagittal])],
                                 flex_sizes=["2", "1"]))
            self.layout_manager.set_layout("review")  # creates the slice views (and their slice nodes) now
        _drop_model_slice_manager()
        self._paced = pace_views(slice_factory, self.slicer_app.view_manager.get_slice_views())  # the mouse-up first
        self.timings, self._mip_cache = ServerTimings(), {}
        for view in self.slicer_app.view_manager.get_slice_views():
            name = view.get_view_node().GetName()
            self.timings.observe_render_window(VIEW_TITLES.get(name, name).lower(), view.render_window())
        self.session = ReviewSession(self.slicer_app, cases, on_change=self.push_state,
                                     rescore_model=rescore_model, clock=self.timings.actions,
                                     reviewer=validation.reviewer(reviewer), read_only=read_only)
        self._init_state(cases)
        build_page(self)
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
        s.threshold_min, s.threshold_max, s.threshold_step = page_text.PROBABILITY_SLIDER
        s.has_probability, s.list_title = True, "Candidates"
        s.overlay, s.overlay_opacity = "pet", 0.5
        s.tool, s.brush_mm = "none", 6.0
        s.can_undo = s.can_redo = False
        s.patient_text = s.slice_text = s.saved_text = s.message = s.edit_text = ""
        s.saving, s.take_from_others = False, False
        s.below_count, s.can_undo_bulk = 0, False
        s.sort_by = "rank"
        s.export_disabled_reason, s.has_attention, s.has_export, s.export_kind = "", False, False, "rtstruct"
        s.export_state, s.export_summary, s.pending_rows, s.confirm_pending = "none", "", [], False
        s.message_ok, s.help_open, s.busy = False, False, 0
        s.shortcuts = [{"keys": k, "action": a} for k, a in SHORTCUTS]
        s.ct_presets, s.ct_preset, s.has_ct = list(CT_PRESETS), "soft tissue", True
        s.pet_lower, s.pet_upper, s.has_pet = 2.0, 10.0, False
        s.cursor_text, s.counts_text, s.provenance_text, s.operating_text = "", "", "", ""
        s.view_info = {}
        s.rescoring, s.rescoring_available = True, False
        s.other_findings, s.other_findings_open, s.mip_src, s.mip_markers = [], False, "", []
        s.reviewer_default = self.session.reviewer  # --reviewer: each browser starts with it, then keeps its own

    def push_state(self) -> None:
        """Copy what the session shows into the page state (called by the session after every change)."""
        session, s = self.session, self.state
        if session.review is None:
            return
        visible = session.review.visible_ids()
        threshold = session.review.threshold
        rescoring = session.rescoring_status()
        moved = rescoring.get("moved", {}) if rescoring.get("enabled") else {}
        results = session.review.results
        s.candidates = [candidate_row(c, visible=c.id in visible, threshold=threshold, moved=moved, results=results)
                        for c in page_text.sorted_candidates(session.ranked_candidates(), s.sort_by)]
        s.has_probability = results.ranks_by_probability
        s.threshold_min, s.threshold_max, s.threshold_step = page_text.threshold_range(results)
        s.list_title = page_text.list_title(results)
        s.rescoring_available, s.rescoring = rescoring["available"], rescoring["enabled"]
        rows = s.candidates
        s.operating_index = (next((k for k, row in enumerate(rows) if row["below"]), len(rows))
                             if s.sort_by == "rank" else -1)  # the line means something in rank order only
        decisions = [c.review for c in session.review.results.candidates]
        hidden = sum(1 for row in rows if row["review"] == "pending" and not row["visible"])
        s.counts_text = (f"{decisions.count('accepted')} accepted · {decisions.count('pending')} pending "
                         f"({hidden} hidden) · {decisions.count('rejected')} rejected")
        s.operating_text = page_text.operating_text(results, threshold, session.review.froc)
        export_state, summary = session.export_state()
        s.export_state, s.export_summary = export_state, summary
        s.pending_rows = [dict(r, p=_fmt_p(r["probability"])) for r in session.pending_to_confirm()]
        s.ct_preset = session.ct_preset
        s.pet_lower, s.pet_upper = session.pet_window
        s.has_pet = session.review.pet is not None
        s.has_ct = not session.case.pet_only
        s.provenance_text = self._provenance_text()
        s.selected_id = session.selected_id
        s.other_findings = page_text.other_finding_items(session.review.results)
        s.update(mip.page_state(session, self._mip_cache))  # the clickable PET MIP (web/mip.py)
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
        s.saving = bool(session.status_saving())
        s.saved_text = ("Saving…" if s.saving else f"All changes saved "
                        f"{time.strftime('%H:%M:%S', time.localtime(session.saved_at))} to {session.case.review_dir}"
                        if session.saved_at else "")
        s.edit_text, s.take_from_others = session.edit_text(), session.take_from_others
        s.below_count, s.can_undo_bulk = session.below_operating_point(), bool(session._bulk_rejected)
        s.export_disabled_reason, s.export_kind = session.case.export_disabled_reason(), session.case.export_kind
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

    # the page sends its own client's reviewer name with every decision (web/keyboard.py lnsTrigger)
    def accept(self, candidate_id, reviewer=None) -> None:
        self._guard(self.session.set_review, candidate_id, "accepted", reviewer)

    def reject(self, candidate_id, reviewer=None) -> None:
        self._guard(self.session.set_review, candidate_id, "rejected", reviewer)

    def reset_decision(self, candidate_id, reviewer=None) -> None:
        self._guard(self.session.set_review, candidate_id, "pending", reviewer)

    def set_reviewer(self, name) -> None:
        """The name typed in one browser: the default for review.json; decisions carry their client's own."""
        if self.session.review is not None and name != self.session.review.reviewer:
            self._guard(self.session.set_reviewer, name)

    def undo(self) -> None:
        self._guard(self.session.undo)

    def redo(self) -> None:
        self._guard(self.session.redo)

    def export(self, include_pending=False) -> None:
        """Accepted nodes only, unless the reviewer confirmed the listed pending nodes (``include_pending``)."""
        self.state.confirm_pending = False
        self._guard(lambda: self.session.export_rtstruct(validation.flag(include_pending, "include pending")))

    def on_key(self, action, reviewer=None) -> None:
        """A keyboard shortcut (web/keyboard.py) on the selected candidate or the views."""
        session = self.session
        if session.review is None or not isinstance(action, str):
            return
        selected = session.selected_id
        actions = {
            "next": lambda: session.step_candidate(+1), "previous": lambda: session.step_candidate(-1),
            "accept": lambda: selected is not None and session.set_review(selected, "accepted", reviewer),
            "reject": lambda: selected is not None and session.set_review(selected, "rejected", reviewer),
            "reset": lambda: selected is not None and session.set_review(selected, "pending", reviewer),
            "undo": session.undo, "redo": session.redo,
            "slice_up": lambda: session.step_slice(+1), "slice_down": lambda: session.step_slice(-1),
            "overlay": session.toggle_overlay, "reset_zoom": session.reset_zoom, "zoom_node": session.zoom_to_node,
            "next_pending": session.next_pending,
            "paint": lambda: session.set_tool("paint"), "erase": lambda: session.set_tool("erase"),
            "no_tool": lambda: session.set_tool("none"),
            "brush_smaller": lambda: session.set_tool(session.tool, max(1.0, session.brush_mm - 1.0)),
            "brush_larger": lambda: session.set_tool(session.tool, min(30.0, session.brush_mm + 1.0)),
            "reject_below": lambda: session.reject_below_operating_point(reviewer),
        }
        if action in actions:
            self._guard(actions[action], name=f"key {action}")
        elif action.startswith("preset:"):
            self._guard(session.set_ct_preset, action.split(":", 1)[1], name="key preset")

    def _provenance_text(self) -> str:
        """Case id, study date and the models (applied, or not and why; Results.models): what the reader sees."""
        session = self.session
        parts = [f"Case {session.case.case_id}"]
        date = session.case.study_date()
        if date:
            parts.append(f"study {date}")
        return " · ".join(parts + page_text.models_text(session.review.results))

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
        self.server.trigger("lns_reviewer")(self.set_reviewer)
        self.server.trigger("lns_bulk_reject")(
            lambda reviewer=None: self._guard(self.session.reject_below_operating_point, reviewer, name="bulk reject"))
        self.server.trigger("lns_undo_bulk")(
            lambda reviewer=None: self._guard(self.session.undo_bulk_reject, reviewer, name="undo bulk reject"))
        self.server.trigger("lns_export")(self.export)

        @self.state.change("sort_by")
        def on_sort(sort_by, **_):
            self.push_state()

        @self.state.change("take_from_others")
        def on_take(take_from_others, **_):
            if self.session.review is not None and take_from_others != self.session.take_from_others:
                self._guard(self.session.set_take_from_others, take_from_others)

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


def review_url(host: str, port: int, token: Optional[str]) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
