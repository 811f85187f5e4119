"""The flow-matching schedule matches diffusers' FlowMatchEulerDiscreteScheduler exactly."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from vrlvr.models.schedule import flow_sigmas, sample_train_sigmas, shift_sigmas, sigmas_to_timesteps


@pytest.mark.parametrize("steps,shift", [(1, 1.0), (10, 1.0), (20, 3.0), (50, 5.0), (7, 2.5), (30, 8.0)])
def test_sigmas_and_timesteps_equal_diffusers(steps, shift):
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    sigmas = flow_sigmas(steps, shift)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert torch.equal(sigmas, sched.sigmas)
    assert torch.equal(sigmas_to_timesteps(sigmas[:-1]), sched.timesteps)


def test_shift_closed_form_and_endpoints():
    assert shift_sigmas(0.5, 3.0) == pytest.approx(0.75)
    s = flow_sigmas(10, 5.0)
    assert s[0] == 1.0 and s[-1] == 0.0 and bool((s[1:] < s[:-1]).all())
    # a larger shift spends more steps at high noise
    assert bool((flow_sigmas(10, 5.0)[1:-1] > flow_sigmas(10, 1.0)[1:-1]).all())
    with pytest.raises(ValueError, match="num_steps"):
        flow_sigmas(0)


def test_train_sigmas_range_and_shift():
    g = torch.Generator().manual_seed(0)
    a = sample_train_sigmas(4096, 1.0, "logit_normal", g)
    g = torch.Generator().manual_seed(0)
    b = sample_train_sigmas(4096, 3.0, "logit_normal", g)
    assert a.shape == (4096,) and float(a.min()) > 0 and float(a.max()) < 1
    assert torch.allclose(b, shift_sigmas(a, 3.0), atol=1e-6)
    assert abs(float(sample_train_sigmas(4096, 1.0, "uniform", g).mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="logit_normal"):
        sample_train_sigmas(2, mode="beta")
