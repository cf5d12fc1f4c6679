"""Scene adapter on slicer-core: volumes in RAS from LPS images with a non-identity direction, display, views."""

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from scene_fixtures import case, make_case, mrml, review  # noqa: F401  (pytest fixtures)

slicer = pytest.importorskip("slicer")

from LNStagingLib.scene import coordinates, setup, views, volumes  # noqa: E402


def test_fixture_grid_is_rotated_and_anisotropic(case):
    ct, _, _ = case
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    assert not np.allclose(direction, np.diag(np.diag(direction)))  # off-diagonal: axes permuted
    assert len(set(ct.GetSpacing())) == 3


def test_voxel_ras_is_flipped_lps(mrml, case):
    ct, _, _ = case
    node = volumes.add_volume(mrml.scene, ct, "CT")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    for index in [(0, 0, 0), (3, 17, 9), (49, 2, 15)]:
        lps = ct.TransformIndexToPhysicalPoint(index)
        ras = matrix.MultiplyPoint((*index, 1.0))[:3]
        assert ras == pytest.approx((-lps[0], -lps[1], lps[2]), abs=1e-6)
    # the voxel values land at the same IJK
    array = volumes.array_from_volume(node)
    assert array[9, 17, 3] == ct[3, 17, 9]


def test_volume_round_trip_keeps_geometry_and_voxels(mrml, case):
    ct, _, _ = case
    back = volumes.image_from_volume(volumes.add_volume(mrml.scene, ct, "CT"))
    assert back.GetOrigin() == pytest.approx(ct.GetOrigin())
    assert back.GetSpacing() == pytest.approx(ct.GetSpacing())
    assert back.GetDirection() == pytest.approx(ct.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(ct))


def test_geometry_from_matrix_inverts_ijk_to_ras(case):
    ct, _, _ = case
    origin, spacing, direction = coordinates.geometry_from_ijk_to_ras(coordinates.ijk_to_ras_matrix(ct))
    assert origin == pytest.approx(ct.GetOrigin())
    assert spacing == pytest.approx(ct.GetSpacing())
    assert direction == pytest.approx(ct.GetDirection())


def test_prepare_scene_registers_what_slicer_would(mrml):
    assert setup.register_converter_rules() >= 4
    assert mrml.scene.GetNodeByID(volumes.PET_COLOR_NODE_ID) is not None
    assert mrml.scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None


def test_pet_fused_over_ct_and_attention_overlay(review):
    pet_display = review.pet.GetDisplayNode()
    assert pet_display.GetColorNodeID() == volumes.PET_COLOR_NODE_ID
    assert (pet_display.GetWindowLevelMin(), pet_display.GetWindowLevelMax()) == pytest.approx((0.0, 10.0))
    composites = views.composite_nodes(review.scene)
    assert len(composites) == 3
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == review.ct.GetID()
        assert composite.GetForegroundVolumeID() == review.pet.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.5)
    review.set_overlay("attention", 0.3)
    for composite in composites:
        assert composite.GetForegroundVolumeID() == review.attention.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.3)
    assert review.attention.GetDisplayNode().GetColorNodeID() == volumes.ATTENTION_COLOR_NODE_ID
    review.set_overlay("none")
    assert composites[0].GetForegroundVolumeID() is None


def test_jump_puts_every_slice_plane_through_the_centroid(review):
    ras = review.jump_to(3)
    centroid = review.results.candidate(3).centroid_lps
    assert ras == pytest.approx((-centroid[0], -centroid[1], centroid[2]))
    for slice_node in views.ensure_slice_views(review.scene):
        to_slice = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(slice_node.GetSliceToRAS(), to_slice)
        assert abs(to_slice.MultiplyPoint((*ras, 1.0))[2]) < 1e-6, slice_node.GetName()
    axial = [n for n in views.ensure_slice_views(review.scene) if n.GetOrientation() == "Axial"][0]
    assert axial.GetSliceOffset() == pytest.approx(ras[2])


def test_jump_shows_the_node_when_the_view_did_not_and_keeps_the_pan_when_it_did(review):
    """A jump after the reader zoomed in on another node: a view that would not show the centroid is centred on
    it (a jump that only moved the slices left it off-screen, and a brush stroke aimed at it missed); a view that
    already shows a point well inside keeps its pan and zoom."""
    nodes = [n for n in views.ensure_slice_views(review.scene) if n.GetName() in ("Red", "Yellow", "Green")]
    near, far = (coordinates.lps_to_ras(review.results.candidate(i).centroid_lps) for i in (1, 4))
    views.zoom_to_ras(review.scene, near, 20.0)  # 20 mm across: node 4 (about 40 mm away) is outside
    assert not views.shows_point(nodes[0], far), "the test needs node 4 outside the zoomed axial view"
    fields = [n.GetFieldOfView() for n in nodes]
    review.jump_to(4)
    for node, field in zip(nodes, fields):
        assert views.shows_point(node, far, views.JUMP_EDGE_MARGIN), node.GetName()
        assert node.GetFieldOfView() == pytest.approx(field), f"{node.GetName()}: the jump changed the zoom"
        to_slice = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(node.GetSliceToRAS(), to_slice)
        assert abs(to_slice.MultiplyPoint((*far, 1.0))[2]) < 1e-6, node.GetName()
    axial = nodes[0]
    before = coordinates.numpy_matrix(axial.GetXYToRAS())
    views.jump_to_ras(review.scene, (far[0] + 3.0, far[1], far[2]))  # 3 mm to the side: well inside the view
    assert np.allclose(coordinates.numpy_matrix(axial.GetXYToRAS()), before), "the axial view panned needlessly"
