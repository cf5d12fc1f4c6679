"""Render docs/images/slicer-review.png: a review as Slicer's own slice views draw it.

The three slice views are rendered headless by Slicer's MRML displayable managers (slicer-core, through
trame-slicer's serverless view factory) from a scene the LNStaging scene adapter built: the demo case's CT as
background, the PET (PET-Heat, 0-10 SUV) as foreground, the GTV_LN segments coloured by probability, the views
jumped to the most probable node. It is not a capture of the Qt application (no panel): that needs a desktop Slicer.

    lnstaging demo --out demo_output
    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow python scripts/slicer_screenshot.py demo_output \
        --out docs/images/slicer-review.png
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "Resources" / "DemoCase" / "cases" / "case010"
SIZES = ((640, 560), (320, 280), (320, 280))  # axial, coronal, sagittal (pixels)


def grab(view) -> Image.Image:
    window = view.render_window()
    view.render()
    grabber = vtkWindowToImageFilter()
    grabber.SetInput(window)
    grabber.ReadFrontBufferOff()
    grabber.Update()
    image = grabber.GetOutput()
    w, h, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
    return Image.fromarray(np.ascontiguousarray(pixels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results folder of 'lnstaging demo' (or run) on the demo case")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "slicer-review.png")
    args = parser.parse_args()

    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    from LNStagingLib.results import Results
    from LNStagingLib.scene import views as scene_views
    from LNStagingLib.scene import volumes
    from LNStagingLib.scene.review import ReviewScene

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    slice_views = [app.view_manager.create_view(d) for d in (ViewLayoutDefinition.axial_view(),
                                                              ViewLayoutDefinition.coronal_view(),
                                                              ViewLayoutDefinition.sagittal_view())]
    ct = volumes.load_volume_file(app.scene, CASE / "ct.nii.gz", "CT")
    volumes.show_ct(ct)
    scene_views.set_layers(app.scene, background=ct)
    pet = volumes.load_volume_file(app.scene, CASE / "pet.nii.gz", "PET")
    results = Results.read(args.results)
    review = ReviewScene.show(app.scene, results, ct, pet, overlay="pet", overlay_opacity=0.45)
    for view, size in zip(slice_views, SIZES):
        view.render_window().SetSize(*size)  # before fitting: the fit uses the window's size
        view.fit_view_to_content()
    top = min(results.candidates, key=lambda c: c.rank)
    review.jump_to(top.id)

    panels = [grab(view) for view in slice_views]
    canvas = Image.new("RGB", (960, 600), (24, 24, 24))
    canvas.paste(panels[0], (0, 40))
    canvas.paste(panels[1], (640, 40))
    canvas.paste(panels[2], (640, 320))
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 8), f"LNStaging review in Slicer's slice views (slicer-core {version('slicer-core')}): demo case "
                       f"(synthetic), {len(results.candidates)} GTVn candidates, jumped to {top.name} "
                       f"(p = {top.probability:.2f})", fill=(230, 230, 230))
    draw.text((10, 24), "CT background, PET-Heat foreground (0-10 SUV), GTVn coloured by probability. "
                        "Research software: not for clinical use.", fill=(255, 160, 60))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out} ({canvas.size[0]}x{canvas.size[1]})")


if __name__ == "__main__":
    main()
