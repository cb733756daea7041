"""The verdicts and the certificate in words (the pages and ``plasticity analyze --explain``)."""

#: what each verdict means, one sentence each
VERDICT_MEANING = {
    "gradient": "the drift is plain gradient descent on the loss: at every moving record it "
                "points downhill and one scalar learning rate (M = cI) maps minus the gradient "
                "onto it (relative residual ≤ 0.05)",
    "natural-gradient-constant": "the drift descends the loss at every moving record and one "
                                 "constant SPD metric M (the same at every record) maps minus the "
                                 "gradient onto it: natural gradient descent with a fixed metric",
    "natural-gradient": "the drift descends the loss at every moving record, but only a "
                        "state-dependent SPD metric M(w) maps minus the gradient onto it: natural "
                        "gradient descent with a metric that changes along the way",
    "not-descent": "at some moving record the drift goes uphill on the loss or is orthogonal to "
                   "its gradient (descent fraction < 1): not (natural) gradient descent on this loss",
    "no-loss-exists": "the trajectory comes back to where it was after a path of non-zero "
                      "length; no loss can decrease along a path that returns, so no loss of any "
                      "kind is descended",
    "fixed-point": "no record moves: the run sits at a fixed point, there is nothing to certify",
}

#: the columns of the verdict table
COLUMN_MEANING = {
    "moving": "records whose drift is not negligible, out of all records",
    "descent": "fraction of moving records where the drift goes downhill on the loss (f·∇L < 0)",
    "ψ": "angle between the drift and steepest descent (−∇L), degrees; below 90° is descent",
    "κ_min": "smallest condition number of a metric M with f = −M∇L, (1+sin ψ)/(1−sin ψ); 1 is "
             "plain gradient descent",
    "resid cI": "relative residual of the best scalar metric M = cI (plain gradient descent): "
                "≤ 0.05 fits",
    "resid M": "relative residual of the best constant SPD metric: ≤ 0.05 fits",
}

BASIS_MEANING = {
    "expectation": "in expectation (the rule's expected drift formula, at the logged state)",
    "sample-path": "along the path (the weight changes the simulation actually made)",
    "ensemble": "over seeds (the mean drift of several runs of one config)",
}


def legend_line():
    """One line under ``plasticity analyze``'s table: what the short column names mean."""
    return ("moving: records whose drift is not negligible; descent: fraction of them going "
            "downhill; psi: angle to steepest descent (deg); kappa_min: best metric's condition "
            "number; resid cI / resid M: misfit of a scalar / constant metric (<= 0.05 fits); "
            "--explain for the verdicts")


def explain_text():
    """``plasticity analyze --explain``: each verdict's meaning, then the columns."""
    import textwrap

    def entry(label, meaning):
        return textwrap.fill(meaning, width=90, initial_indent=f"  {label:<26} ",
                             subsequent_indent=" " * 29)

    lines = ["Verdicts (over the moving records):"]
    lines += [entry(name, meaning) for name, meaning in VERDICT_MEANING.items()]
    lines += ["", "Columns:"]
    lines += [entry({"ψ": "psi_deg", "κ_min": "kappa_min"}.get(name, name), meaning)
              for name, meaning in COLUMN_MEANING.items()]
    return "\n".join(lines)


def _num(x, spec=".3g"):
    return "–" if x is None else format(x, spec)


def _angle(x):
    """An angle in degrees for a sentence: ψ of 1e-14° is "< 0.01"."""
    return "–" if x is None else ("< 0.01" if abs(x) < 0.01 else format(x, ".3g"))


def result_sentence(result, rule=None):
    """One sentence on one certified loss, e.g. "oja's drift descends rayleigh at every
    moving record, with a state-dependent metric; κ_min median 1.02"."""
    who = f"the {rule} drift" if rule else "the drift"
    loss = result.get("loss", "the loss")
    verdict = result.get("verdict")
    frac = result.get("descent_fraction")
    kappa = (result.get("kappa_min") or {}).get("median")
    psi = (result.get("psi_deg") or {}).get("median")
    basis = result.get("basis")
    where = f" {BASIS_MEANING[basis].split(' (')[0]}" if basis in BASIS_MEANING else ""
    if verdict == "fixed-point":
        return f"{who.capitalize()} does not move against {loss}: a fixed point{where}."
    if verdict == "no-loss-exists":
        inner = result.get("descent_verdict")
        rec = result.get("recurrence") or {}
        when = ""
        if rec.get("t_first") is not None and rec.get("t_return") is not None:
            when = f" (the state at t = {rec['t_return']:.4g} s returns to that at t = {rec['t_first']:.4g} s)"
        extra = f"; taken record by record, {loss} would read '{inner}'" if inner else ""
        return f"The trajectory recurs{when}, so no loss is descended{extra}{where}."
    if frac is not None and frac >= 1.0:
        how = {"gradient": "as plain gradient descent (one scalar learning rate)",
               "natural-gradient-constant": "with one constant metric",
               "natural-gradient": "with a state-dependent metric"}.get(verdict, "")
        return (f"{who.capitalize()} descends {loss} at every moving record{where}, {how}; "
                f"κ_min median {_num(kappa)}, ψ median {_angle(psi)}°.")
    if frac is not None:
        return (f"{who.capitalize()} descends {loss} at {100 * frac:.1f}% of the moving records only{where}: "
                f"not descent (ψ median {_angle(psi)}°).")
    return f"{loss}: {verdict}."


def consistency_sentence(consistency):
    """The consistency test (simulated increments vs the expected drift) in words."""
    if not isinstance(consistency, dict):
        return None
    p = consistency.get("p_value")
    ok = consistency.get("consistent")
    stat, dof = consistency.get("statistic"), consistency.get("dof")
    numbers = []
    if stat is not None:
        numbers.append(f"statistic {_num(stat)}")
    if dof is not None:
        numbers.append(f"{dof} degrees of freedom")
    if p is not None:
        numbers.append(f"p = {_num(p)}")
    tail = f" ({', '.join(numbers)})" if numbers else ""
    if ok is True:
        return f"The simulated weight changes agree with the rule's expected drift{tail}."
    if ok is False:
        return (f"The simulated weight changes do not agree with the rule's expected drift{tail}: "
                "the expected-drift certificate describes the formula, not this simulation.")
    return f"Consistency of the simulated weight changes with the expected drift: undecided{tail}."
