"""Layer 0: dose quantities and their conversions.

Parse once at the edge (:func:`parse_dose`, :func:`parse_concentration`,
:func:`parse_quantity`); compute on plain floats in canonical units after that.
"""

from openinfusion.units.dose import (
    Basis,
    Concentration,
    Dose,
    DoseUnit,
    basis_value,
    check_same_dimension,
    convert_dose,
    dose_to_rate_ml_h,
    dose_to_volume_ml,
    format_number,
    parse_concentration,
    parse_dose,
    parse_dose_unit,
    rate_to_dose,
    volume_to_dose,
)
from openinfusion.units.quantities import (
    AmountUnit,
    Dimension,
    Kind,
    parse_amount,
    parse_amount_unit,
    parse_quantity,
    split_number,
)

__all__ = [
    "AmountUnit",
    "Basis",
    "Concentration",
    "Dimension",
    "Dose",
    "DoseUnit",
    "Kind",
    "basis_value",
    "check_same_dimension",
    "convert_dose",
    "dose_to_rate_ml_h",
    "dose_to_volume_ml",
    "format_number",
    "parse_amount",
    "parse_amount_unit",
    "parse_concentration",
    "parse_dose",
    "parse_dose_unit",
    "parse_quantity",
    "rate_to_dose",
    "split_number",
    "volume_to_dose",
]
