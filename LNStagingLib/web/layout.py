"""The review page's layout: toolbar, drawer (case, reviewer, operating point, candidate list, tools), views and
dialogs, built with trame's vuetify 3 widgets and bound to ReviewApp's state and triggers (web/app.py). Layout only:
what the texts say comes from web/page_text.py, what the actions do from web/app.py and web/session.py."""

from __future__ import annotations

from .keyboard import KEYBOARD_SCRIPT
from .downloads import RTSTRUCT_NAME, SEG_NAME
from .page_text import EXPORT_TITLES
from .session import CT_PRESETS

TITLE = "LNStaging review"
DRAWER_PX = 530  # the candidate list with its decision column uncut (Testing/test_web_faces.py)
PAGE_CSS = """
#candidates td, #candidates th { padding: 0 6px !important; font-variant-numeric: tabular-nums; }
#candidates tr.operating-line td { border-top: 3px dashed #29b6f6 !important; }
.view-label { position: absolute; color: #ffd54f; font: bold 13px sans-serif; text-shadow: 0 0 3px #000;
              pointer-events: none; z-index: 2; }
"""


def build_page(app) -> None:
    from trame.widgets import client, html
    from trame.widgets import vuetify3 as v
    from trame_vuetify.ui.vuetify3 import SinglePageWithDrawerLayout

    with SinglePageWithDrawerLayout(app.server, theme="dark") as layout:
        app.ui = layout
        client.Script(KEYBOARD_SCRIPT)
        client.Style(PAGE_CSS)
        layout.title.set_text(TITLE)
        layout.drawer.width = DRAWER_PX
        with layout.toolbar:
            v.VProgressCircular(indeterminate=True, size=22, width=3, color="info", v_show="busy > 0",
                                id="busy", classes="mx-2", aria_label="working")
            html.Div("{{ provenance_text }}", id="provenance", classes="text-caption mx-2 text-truncate",
                     style="max-width: 24vw", title=("provenance_text",))
            v.VSpacer()
            action_bar(app, html, v)
            html.Div("{{ disclaimer }}", id="disclaimer", classes="text-warning font-weight-bold mx-2 text-caption",
                     style="max-width: 14vw; line-height: 1.1")
            v.VBtn("{{ other_findings.length }} other", size="small", variant="text", id="other-findings-button",
                   v_show="other_findings.length", click="other_findings_open = true", prepend_icon="mdi-eye-off-outline",
                   title="Other findings, not in the node list (other_findings.csv)")
            v.VBtn(icon="mdi-keyboard", size="small", variant="text", id="help-button", click="help_open = !help_open",
                   title="Keyboard shortcuts (?)", aria_label="Keyboard shortcuts")
        with layout.drawer:
            with html.Div(classes="pa-3 d-flex flex-column", style="gap: 6px; font-size: 0.9rem"):
                with html.Div(id="case-chooser", v_show="case_items.length > 1"):
                    v.VSelect(label="Case", id="case-select", v_model=("case_id",), items=("case_items",),
                              density="compact", hide_details=True)
                # this browser's own name (not shared state: two browsers on one server each keep theirs)
                v.VTextField(model_value=("reviewer_default",), change="window.lnsSetReviewer($event.target.value)",
                             label="Reviewer (saved with each decision, UTC time)", density="compact",
                             hide_details=True, id="reviewer", maxlength=64, aria_label="Reviewer name")
                html.Div("{{ patient_text }}", id="patient-probability", classes="text-subtitle-1")
                html.Div("{{ operating_text }}", id="operating-point")
                with html.Div(id="drawer-threshold"):
                    # a probability, or an SUVpeak when no classifier ran (web/page_text.py threshold_range)
                    v.VSlider(v_model=("threshold",), min=("threshold_min",), max=("threshold_max",),
                              step=("threshold_step",), density="compact", hide_details=True, id="threshold",
                              aria_label="Operating point threshold")
                v.VCheckbox(v_model=("show_rejected",), label="Show rejected", density="compact",
                            hide_details=True)
                v.VCheckbox(v_model=("rescoring",), label="Re-score pending nodes from my decisions",
                            density="compact", hide_details=True, id="rescoring", v_show="rescoring_available")
                html.Div("{{ cursor_text }}", id="cursor-values", classes="text-caption font-weight-medium",
                         style="min-height: 1.2em")
                candidate_table(app, html, v)  # before the view controls: about 16 rows without scrolling
                view_controls(app, html, v)
                html.Div("{{ slice_text }}", id="slice-positions", classes="text-caption")
                edit_tools(app, html, v)
                export_tools(app, html, v)
                html.Div("{{ saved_text }}", id="saved", classes=("saving ? 'text-warning' : 'text-caption'",))
                html.Div("{{ message }}", id="message", v_show="message",
                         classes=("message_ok ? 'text-success' : 'text-error'",))
        layout.footer.clear()
        with layout.footer:
            html.Div("LNStaging {{ version }} · {{ disclaimer }}", classes="text-caption")
        with layout.content:
            with html.Div(classes="fill-height d-flex flex-row flex-grow-1", id="views"):
                app.layout_manager.initialize_layout_grid(layout)
                pet_mip(html)
            help_panel(app, html, v)
            pending_dialog(app, html, v)
            other_findings(html, v)


def view_controls(app, html, v) -> None:
    with v.VRow(dense=True, align="center", classes="ma-0", style="gap: 6px"):
        html.Span("CT window", classes="mr-1", v_show=("has_ct",))  # a PET-only run has no CT to window
        with v.VBtnToggle(v_model=("ct_preset",), density="compact", mandatory=True, id="ct-presets",
                          v_show=("has_ct",)):
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


def candidate_table(app, html, v) -> None:
    html.Div("{{ list_title }} · click a name or a contour to jump", id="list-title", classes="text-subtitle-2 mt-2")
    with html.Div(classes="d-flex align-center", style="gap: 6px"):
        html.Div("{{ counts_text }} · dashed blue line = operating point", id="counts", classes="text-caption")
        v.VBtn("Reject {{ below_count }} below", id="bulk-reject", size="x-small", variant="outlined", color="error",
               disabled=("below_count === 0",), click="window.lnsTrigger('lns_bulk_reject', [])",
               title="Reject every pending node below the operating point (Shift+R); undo beside it")
        v.VBtn("Undo", id="undo-bulk", size="x-small", variant="text", v_show="can_undo_bulk",
               click="window.lnsTrigger('lns_undo_bulk', [])", title="Put the bulk-rejected nodes back to pending")
    with v.VTable(density="compact", fixed_header=True, height="52vh", id="candidates"):
        with html.Thead():
            with html.Tr():
                for title, tip in (("Name", "RT structure name"), ("p", "metastasis probability"),
                                   ("SA (mm)", "short axis; bold when >= 10 mm"), ("SUVmax", "maximum SUV"),
                                   ("SUVpeak", "mean SUV in a 1 ml sphere (PERCIST); PET candidates"),
                                   ("Vol (ml)", "volume"), ("Decision", "accept / reject / reset")):
                    only_with_p = {"v_if": "has_probability"} if title == "p" else {}
                    key = title.split()[0].lower()
                    html.Th(title + "{{ sort_by === '%s' ? ' ▾' : '' }}" % key, id=f"th-{key}", **only_with_p,
                            title=tip + " (click to sort; click again for the rank order)",
                            style="cursor: pointer", click=f"sort_by = (sort_by === '{key}' ? 'rank' : '{key}')")
        with html.Tbody():
            with html.Tr(v_for="(c, i) in candidates", key="c.id",
                         classes=("{'bg-grey-darken-3': c.id === selected_id, 'text-disabled': !c.visible, "
                                  "'operating-line': i === operating_index && i > 0}",),
                         title=("i === operating_index ? 'operating point ' + (has_probability ? 'p' : 'SUVpeak') + "
                                "' = ' + Number(threshold).toFixed(2) + "
                                "': from here down, hidden unless accepted' : ''",)):
                html.Td("{{ c.name }}", id=("'cand-' + c.id",), style="cursor: pointer; text-decoration: underline",
                        click="window.lnsTrigger('lns_select', [c.id])")
                with html.Td(id=("'p-' + c.id",), v_if="has_probability"):
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


def other_findings(html, v) -> None:
    """PET lesions not in the node list (other_findings.csv), one line each with its reason: behind a title-bar
    button, in a dialog, so the list adds no height to the drawer (whose controls must stay in the viewport)."""
    with v.VDialog(v_model=("other_findings_open",), max_width=640):
        with v.VCard(id="other-findings"):
            v.VCardTitle("Other findings, not in the node list ({{ other_findings.length }})")
            with v.VCardText():
                html.Div("{{ f }}", v_for="(f, i) in other_findings", key="i", classes="text-caption")
            with v.VCardActions():
                v.VSpacer()
                v.VBtn("Close", click="other_findings_open = false", id="other-findings-close")


def pet_mip(html) -> None:
    """The coronal PET MIP beside the views, a marker per shown node in its decision's colour (filled: accepted);
    a click on a marker selects the node (web/mip.py). Padded so that a marker on the picture's edge stays
    clickable."""
    with html.Div(id="pet-mip", v_show="mip_src", style="flex: 0 0 190px; align-self: start; padding: 8px 6px",
                  title="PET MIP (coronal; patient right on the left): click a node to jump to it"):
        with html.Div(style="position: relative"):  # the markers' percentages are of the picture alone
            html.Img(src=("mip_src",), style="width: 100%; display: block", alt="PET maximum intensity projection")
            html.Div(v_for="m in mip_markers", key="m.id", id=("'mip-' + m.id",), title=("m.name",),
                     click="window.lnsTrigger('lns_select', [m.id])", aria_label=("'Jump to ' + m.name",),
                     style=("{position: 'absolute', left: m.left + '%', top: m.top + '%', width: '12px',"
                            " height: '12px', transform: 'translate(-50%, -50%)', borderRadius: '50%',"
                            " cursor: 'pointer', border: (m.selected ? 3 : 2) + 'px solid ' +"
                            " (m.selected ? '#00ffff' : m.colour), background: m.filled ? m.colour : 'transparent'}",))
        html.Div("PET MIP (R on the left)", classes="text-caption text-center")


def action_bar(app, html, v) -> None:
    """The controls a reviewer needs at every moment, in the title bar (never scrolled away): paint / erase, undo,
    export and download, and the out-of-date notice."""
    with v.VBtnToggle(v_model=("tool",), density="compact", mandatory=True, id="tools", classes="mx-1"):
        v.VBtn("None", value="none", id="tool-none", size="small", title="Navigate: click a contour (Esc)")
        v.VBtn("Paint", value="paint", id="tool-paint", size="small", prepend_icon="mdi-brush",
               title="Paint the selected node (B)")
        v.VBtn("Erase", value="erase", id="tool-erase", size="small", prepend_icon="mdi-eraser",
               title="Erase from the selected node (E)")
    v.VBtn(icon="mdi-undo", size="small", variant="text", disabled=("!can_undo",), click=app.undo, id="undo",
           title="Undo (Ctrl+Z)", aria_label="Undo")
    v.VBtn(icon="mdi-redo", size="small", variant="text", disabled=("!can_redo",), click=app.redo, id="redo",
           title="Redo (Ctrl+Y)", aria_label="Redo")
    v.VBtn(icon="mdi-magnify-plus-outline", size="small", variant="text", id="zoom-node",
           click="window.lnsTrigger('lns_key', ['zoom_node'])", aria_label="Zoom to the selected node",
           title="Zoom to the selected node in all three views, and the next ones too (Z; F ends it)")
    v.VBtn("{{ export_kind === 'seg' ? 'Export SEG' : 'Export RTSTRUCT' }}", id="export", size="small",
           color="primary", classes="mx-1", disabled=("export_disabled_reason !== ''",),
           click="window.lnsTrigger('lns_export', [false])", title=(f"export_kind === 'seg' ? '{EXPORT_TITLES['seg']}' : '{EXPORT_TITLES['rtstruct']}'",))
    v.VBtn("+ pending…", id="export-pending", size="small", variant="outlined",
           disabled=("export_disabled_reason !== '' || pending_rows.length === 0",),
           click="confirm_pending = true", title="List the pending nodes, then choose to export them too")
    v.VBtn("RTSTRUCT", id="download-rtstruct", size="small", v_show="has_export && export_kind === 'rtstruct'",
           classes="mx-1",
           disabled=("export_state !== 'current'",), href=f"lnstaging/download/{RTSTRUCT_NAME}",
           raw_attrs=[f'download="{RTSTRUCT_NAME}"'], prepend_icon="mdi-download",
           title="The RTSTRUCT of the last export (refused when the review changed since)")
    v.VBtn("SEG", id="download-seg", size="small", v_show="has_export", classes="mx-1",
           disabled=("export_state !== 'current'",), href=f"lnstaging/download/{SEG_NAME}",
           raw_attrs=[f'download="{SEG_NAME}"'], prepend_icon="mdi-download",
           title="The same nodes as a DICOM SEG (voxel masks), written with each export")
    html.Div("Export out of date: export again", id="export-stale", v_show="export_state === 'stale'",
             classes="text-warning text-caption font-weight-bold mx-1",
             title=("'The review changed after the export (' + export_summary + ')'",))


def edit_tools(app, html, v) -> None:
    html.Div("Correct the selected node's contour (Paint / Erase in the bar above)", classes="text-subtitle-2 mt-2")
    v.VSlider(v_model=("brush_mm",), min=1, max=30, step=0.5, density="compact", hide_details=True,
              label="Brush (mm)", thumb_label=True, id="brush", aria_label="Brush diameter in mm")
    v.VCheckbox(v_model=("take_from_others",), label="Paint may take voxels from other nodes", density="compact",
                hide_details=True, id="take-from-others",
                title="Off: a stroke changes only the selected node. On: the page lists the nodes it took voxels from")
    html.Div("{{ edit_text }}", id="edit-changes", v_show="edit_text",
             classes=("edit_text.includes('other nodes') ? 'text-warning' : 'text-caption'",))


def export_tools(app, html, v) -> None:
    with html.Div(classes="d-flex flex-wrap mt-2", style="gap: 6px"):
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
    html.Div("{{ export_disabled_reason }}", id="export-reason", classes="text-caption text-warning",
             v_show="export_disabled_reason")


def pending_dialog(app, html, v) -> None:
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


def help_panel(app, html, v) -> None:
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


def slice_view_overlay(server, view_id, view, views: dict) -> None:
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
