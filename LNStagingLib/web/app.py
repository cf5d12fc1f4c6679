"""The review page: trame-slicer views (rendered on the server) + the review panel, bound to a ReviewSession.

Layout: axial view large on the left, coronal and sagittal stacked on the right; the panel on the left holds the
case chooser, the patient probability, the operating point, the overlay, the candidate list (sorted by probability,
click a name to jump, accept/reject), contour correction (paint/erase with undo) and export/downloads.
HTTP routes beside the page: ``/lnstaging/status.json`` (what the session shows: slice offsets, decisions, voxel
counts) and ``/lnstaging/download/<file>`` (the reviewed gtv_ln.nii.gz, review.json, the exported RTSTRUCT).
Everything the page loads comes from this server (trame's client bundle, vuetify, icons): nothing from a CDN.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from .. import NOT_FOR_CLINICAL_USE, __version__
from ..errors import LNStagingError
from . import security
from .cases import ReviewCase
from .session import RTSTRUCT_NAME, ReviewSession

log = logging.getLogger(__name__)

DOWNLOADS = {"gtv_ln.nii.gz": "review", "review.json": "review", RTSTRUCT_NAME: "export"}
TITLE = "LNStaging review"


def _fmt(value, digits=2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


class ReviewApp:
    """Builds the server, the slicer scene, the views and the page for ``cases``."""

    def __init__(self, cases: list[ReviewCase], token: Optional[str] = None, server=None):
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
        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, self.server, slice_view_ui_f=_slice_slider_only)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        axial, coronal, sagittal = (ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                                    ViewLayoutDefinition.sagittal_view())
        with vtk_messages_without(RESIZE_EVENT_DEPRECATION):  # after SlicerApp(), which sets VTK's output window
            self.layout_manager.register_layout(  # creates the slice views
                "review", Layout(LayoutDirection.Horizontal, [axial, Layout(LayoutDirection.Vertical, [coronal, sagittal])],
                                 flex_sizes=["2", "1"]))
            self.layout_manager.set_layout("review")  # creates the slice views (and their slice nodes) now
        self.session = ReviewSession(self.slicer_app, cases, on_change=self.push_state)
        self._init_state(cases)
        self._build_ui()
        self._bind_changes()
        self.ctrl.on_server_bind.add(self._bind_http)
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

    def push_state(self) -> None:
        """Copy what the session shows into the page state (called by the session after every change)."""
        session, s = self.session, self.state
        if session.review is None:
            return
        visible = session.review.visible_ids()
        s.candidates = [{
            "id": c.id, "name": c.name, "rank": c.rank, "p": _fmt(c.probability), "volume": _fmt(c.volume_ml, 2),
            "suv": _fmt(c.suv_max, 1), "review": c.review, "visible": c.id in visible, "source": c.source,
        } for c in session.ranked_candidates()]
        s.selected_id = session.selected_id
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
        s.has_export = session.last_export is not None
        if session.last_error:
            s.message = session.last_error
        self._push_slice_text(flush=False)
        s.flush()

    def _push_slice_text(self, flush: bool = True) -> None:
        offsets = self.session.slice_offsets()
        labels = (("axial", "S"), ("coronal", "P"), ("sagittal", "L"))
        text = " · ".join(f"{view} {offsets[view]:.1f} mm" for view, _ in labels if view in offsets)
        if text != self.state.slice_text:
            self.state.slice_text = text
            if flush:
                self.state.flush()

    def _slice_nodes(self) -> list:
        return [view.get_view_node() for view in self.slicer_app.view_manager.get_slice_views()]

    # ---- actions from the page -------------------------------------------------------------------------------
    def _guard(self, action, *args) -> None:
        """Run a page action; a refused or failed one shows its message and the page state is reset from the
        session (the values in ``args`` come from the page unchecked: the session validates them)."""
        try:
            action(*args)
            self.state.message = ""
        except LNStagingError as error:
            self.state.message = str(error)
        except Exception as error:  # shown on the page and logged: a failed action must not end the session
            log.exception("review action failed")
            self.state.message = f"Internal error ({type(error).__name__}: {error}); your saved review is unchanged."
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

    def export(self) -> None:
        def run():
            path = self.session.export_rtstruct()
            self.state.message = ""
            self.state.export_text = f"RTSTRUCT written: {path}"
        self._guard(run)
        if not self.state.message:
            self.state.message = self.state.export_text

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

        @self.state.change("overlay", "overlay_opacity")
        def on_overlay(overlay, overlay_opacity, **_):
            if self.session.review is None:
                return
            if overlay != self.session.overlay:
                self._guard(self.session.set_overlay, overlay, overlay_opacity)
            elif overlay_opacity != self.session.overlay_opacity:
                self._guard(self.session.set_overlay_opacity, overlay_opacity)

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

        async def status(_request):
            return web.json_response(self.session.status() | {"version": __version__, "disclaimer": NOT_FOR_CLINICAL_USE})

        async def download(request):
            name = request.match_info["name"]
            case = self.session.case
            if name not in DOWNLOADS or case is None:
                raise web.HTTPNotFound(text="no such file")
            if DOWNLOADS[name] == "review":
                self.session.flush()
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
        from trame.widgets import html
        from trame.widgets import vuetify3 as v
        from trame_vuetify.ui.vuetify3 import SinglePageWithDrawerLayout

        with SinglePageWithDrawerLayout(self.server, theme="dark") as layout:
            self.ui = layout
            layout.title.set_text(TITLE)
            layout.drawer.width = 430
            with layout.toolbar:
                v.VSpacer()
                html.Div("{{ disclaimer }}", id="disclaimer", classes="text-warning font-weight-bold mx-4")
            with layout.drawer:
                with html.Div(classes="pa-3 d-flex flex-column", style="gap: 6px; font-size: 0.85rem"):
                    with html.Div(id="case-chooser", v_show="case_items.length > 1"):
                        v.VSelect(label="Case", id="case-select", v_model=("case_id",), items=("case_items",),
                                  density="compact", hide_details=True)
                    html.Div("{{ patient_text }}", id="patient-probability", classes="text-subtitle-2")
                    html.Div("Operating point (probability threshold): {{ Number(threshold).toFixed(2) }}")
                    with html.Div(id="drawer-threshold"):
                        v.VSlider(v_model=("threshold",), min=0, max=1, step=0.01, density="compact",
                                  hide_details=True, id="threshold")
                    v.VCheckbox(v_model=("show_rejected",), label="Show rejected", density="compact",
                                hide_details=True)
                    with v.VRow(dense=True, align="center", classes="ma-0"):
                        html.Span("Overlay", classes="mr-2")
                        with v.VBtnToggle(v_model=("overlay",), density="compact", mandatory=True, id="overlay"):
                            v.VBtn("PET", value="pet", id="overlay-pet", size="small")
                            v.VBtn("Attention", value="attention", id="overlay-attention", size="small",
                                   disabled=("!has_attention",))
                            v.VBtn("None", value="none", id="overlay-none", size="small")
                    v.VSlider(v_model=("overlay_opacity",), min=0, max=1, step=0.05, label="Opacity",
                              density="compact", hide_details=True, id="overlay-opacity")
                    html.Div("{{ slice_text }}", id="slice-positions", classes="text-caption")
                    self._candidate_table(html, v)
                    self._edit_tools(html, v)
                    self._export_tools(html, v)
                    html.Div("{{ saved_text }}", id="saved", classes="text-caption text-medium-emphasis")
                    html.Div("{{ message }}", id="message", classes="text-error", v_show="message")
            layout.footer.clear()
            with layout.footer:
                html.Div("LNStaging {{ version }} · {{ disclaimer }}", classes="text-caption")
            with layout.content:
                with html.Div(classes="fill-height d-flex flex-row flex-grow-1", id="views"):
                    self.layout_manager.initialize_layout_grid(layout)

    def _candidate_table(self, html, v) -> None:
        html.Div("Candidates (most probable first; click a name to jump)", classes="text-subtitle-2 mt-2")
        with v.VTable(density="compact", fixed_header=True, height="260px", id="candidates"):
            with html.Thead():
                with html.Tr():
                    for title in ("Name", "p", "Vol (ml)", "SUVmax", "Decision"):
                        html.Th(title)
            with html.Tbody():
                with html.Tr(v_for="c in candidates", key="c.id",
                             classes=("{'bg-grey-darken-3': c.id === selected_id, 'text-disabled': !c.visible}",)):
                    html.Td("{{ c.name }}", id=("'cand-' + c.id",), style="cursor: pointer; text-decoration: underline",
                            click=(self.select, "[c.id]"))
                    html.Td("{{ c.p }}")
                    html.Td("{{ c.volume }}")
                    html.Td("{{ c.suv }}")
                    with html.Td(classes="text-no-wrap"):
                        v.VBtn(icon="mdi-check", size="x-small", variant=("c.review === 'accepted' ? 'flat' : 'text'",),
                               color="success", id=("'accept-' + c.id",), click=(self.accept, "[c.id]"))
                        v.VBtn(icon="mdi-close", size="x-small", variant=("c.review === 'rejected' ? 'flat' : 'text'",),
                               color="error", id=("'reject-' + c.id",), click=(self.reject, "[c.id]"))
                        v.VBtn(icon="mdi-undo-variant", size="x-small", variant="text", v_show="c.review !== 'pending'",
                               id=("'reset-' + c.id",), click=(self.reset_decision, "[c.id]"))
                        html.Span("{{ c.review === 'pending' ? '' : c.review }}", classes="text-caption",
                                  id=("'state-' + c.id",))

    def _edit_tools(self, html, v) -> None:
        html.Div("Correct the selected node's contour", classes="text-subtitle-2 mt-2")
        with v.VRow(dense=True, align="center"):
            with v.VBtnToggle(v_model=("tool",), density="compact", mandatory=True, id="tools"):
                v.VBtn("None", value="none", id="tool-none")
                v.VBtn("Paint", value="paint", id="tool-paint", prepend_icon="mdi-brush")
                v.VBtn("Erase", value="erase", id="tool-erase", prepend_icon="mdi-eraser")
            v.VBtn(icon="mdi-undo", size="small", variant="text", disabled=("!can_undo",), click=self.undo, id="undo")
            v.VBtn(icon="mdi-redo", size="small", variant="text", disabled=("!can_redo",), click=self.redo, id="redo")
        v.VSlider(v_model=("brush_mm",), min=1, max=30, step=0.5, density="compact", hide_details=True,
                  label="Brush (mm)", thumb_label=True, id="brush")

    def _export_tools(self, html, v) -> None:
        with html.Div(classes="d-flex flex-wrap mt-2", style="gap: 6px"):
            v.VBtn("Export RTSTRUCT", id="export", size="small", color="primary",
                   disabled=("export_disabled_reason !== ''",), click=self.export)
            v.VBtn("Download GTV_LN (NIfTI)", id="download-gtv", size="small", href="lnstaging/download/gtv_ln.nii.gz")
            v.VBtn("Download review.json", id="download-review", size="small", href="lnstaging/download/review.json")
            v.VBtn("Download RTSTRUCT", id="download-rtstruct", size="small", v_show="has_export",
                   href=f"lnstaging/download/{RTSTRUCT_NAME}")
        html.Div("{{ export_disabled_reason }}", id="export-reason", classes="text-caption text-warning",
                 v_show="export_disabled_reason")

    # ---- running ---------------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> None:
        self.host = host
        self.server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0,
                          exec_mode="main")

    def shutdown(self) -> None:
        self.session.flush()


def _slice_slider_only(server, _view_id, view) -> None:
    """The slice slider of trame-slicer's slice view gutter, without its 3D-view buttons (no 3D view here)."""
    from trame_client.widgets.html import Div
    from trame_slicer.app.logic.slice_view_logic import connect_slice_view_slider_to_state
    from trame_slicer.app.ui.slider import Slider

    with Div(style="position: absolute; bottom: 0; left: 0; background-color: transparent; width: 100%;"):
        Slider(classes="slice-slider", typed_state=connect_slice_view_slider_to_state(server, view), theme="dark",
               dense=True)


def review_url(host: str, port: int, token: Optional[str]) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")

