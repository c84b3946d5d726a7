package org.denoisekit.ij;

import java.awt.Color;
import java.awt.Dimension;
import javax.swing.JButton;
import javax.swing.JComboBox;
import javax.swing.JFileChooser;
import javax.swing.JComponent;
import javax.swing.JLabel;
import javax.swing.JSlider;
import javax.swing.JTextField;
import javax.swing.event.DocumentEvent;
import javax.swing.event.DocumentListener;
import org.denoisekit.ParamSpec;

/**
 * One parameter in the panel, built from its descriptor: a label (help as tooltip), a
 * slider (logarithmic where the descriptor says log scale; for an open range such as a
 * strength in grey levels, logarithmic from 1/8 to 8 times the value the panel opened at),
 * the typed value beside it (any value in range, also beyond the slider's ends), and the
 * problem with a bad value shown right under the field.
 * The text in the field is the value: what the library gets and the macro records.
 */
final class ParamRow {
    /** Slider positions: fine enough that a drag feels continuous. */
    private static final int STEPS = 1000;
    /**
     * Linear ranges wider than this are effectively open (read noise up to 1e9 grey
     * levels): a slider across them could not set a useful value, so they get a field only.
     */
    private static final double MAX_LINEAR_SPAN = 1e5;

    final ParamSpec spec;
    final JLabel label;
    final JSlider slider;
    final JTextField text;
    final JComboBox<String> choice;
    /**
     * For a file: opens a chooser (a save dialog for a file the method writes); for a
     * region: fills in the image's current selection.
     */
    final JButton browse;
    final JLabel error = new JLabel();
    private final Runnable onChange;
    private boolean quiet;
    /** The slider's ends and scale; for an open range they follow the first positive value. */
    private double lo;
    private double hi;
    private boolean logScale;
    /** An open range's slider spans 1/8 to 8 times its anchor (the self-supervised search's span). */
    private final boolean floating;
    private boolean anchored;

    ParamRow(ParamSpec p, String value, Runnable onChange, java.util.function.Supplier<java.awt.Rectangle> selection) {
        this.spec = p;
        this.onChange = onChange;
        String unit = p.unitSuffix();
        label = new JLabel(p.label + (unit.isEmpty() ? "" : " (" + unit + ")"));
        String range = p.isChoice() ? String.join(" | ", p.options)
                : p.isFile() ? (p.writes ? "a file to write" : "a file to read") + "; empty for none"
                : p.isRegion() ? "x,y,width,height in pixels; empty for the whole image" : p.rangeText();
        label.setToolTipText("<html><b>" + p.key + "</b> " + range
                + "<br>" + DenoisePanel.htmlWrap(p.help, 70) + "</html>");
        error.setName(p.key + ".error");
        error.setForeground(new Color(0xb0, 0x20, 0x00));
        error.setVisible(false);
        if (p.isChoice()) {
            choice = new JComboBox<String>(p.options);
            choice.setName(p.key);
            choice.setSelectedItem(value);
            choice.addActionListener(e -> fire());
            slider = null;
            text = null;
            browse = null;
            floating = false;
            return;
        }
        choice = null;
        if (p.isRegion()) {
            // Followed once entered (Enter, leaving the field, the button), not while half
            // typed; the library checks it against the image when it runs.
            text = new JTextField(value, 16);
            text.setName(p.key);
            browse = new JButton("Selection");
            browse.setName(p.key + ".selection");
            browse.setToolTipText("Fill in the bounds of the image's current selection");
            browse.addActionListener(e -> {
                java.awt.Rectangle r = selection.get();
                if (r == null) {
                    error.setText("draw a selection on the image first");
                    error.setVisible(true);
                    return;
                }
                error.setVisible(false);
                text.setText(r.x + "," + r.y + "," + r.width + "," + r.height);
                fire();
            });
            followOnceEntered();
            slider = null;
            floating = false;
            return;
        }
        if (p.isFile()) {
            text = new JTextField(value, 24);
            text.setName(p.key);
            browse = new JButton("Browse...");
            browse.setName(p.key + ".browse");
            browse.addActionListener(e -> choose());
            // A half-typed path is not a file: the preview follows a path once it is
            // entered (Enter, leaving the field, Browse), and never one the preview leaves
            // empty anyway (a file to write).
            if (!p.writes) followOnceEntered();
            slider = null;
            floating = false;
            return;
        }
        browse = null;
        text = new JTextField(value, 8);
        text.setName(p.key);
        text.setHorizontalAlignment(JTextField.RIGHT);
        floating = !hasSlider(p) && (Double.isNaN(p.min) || p.min >= 0);
        if (!floating) {
            lo = p.min;
            hi = p.max;
            logScale = log(p);
        }
        if (hasSlider(p) || floating) {
            slider = new JSlider(0, STEPS, 0);
            slider.setVisible(!floating);
            slider.setName(p.key + ".slider");
            slider.setPreferredSize(new Dimension(180, slider.getPreferredSize().height));
            slider.addChangeListener(e -> {
                if (quiet) return;
                quiet = true;
                text.setText(format(fromSlider(slider.getValue())));
                quiet = false;
                showProblem();
                fire();
            });
        } else {
            slider = null;
        }
        try {
            anchor(Double.parseDouble(value));
        } catch (NumberFormatException e) {
            // A noise-derived default: anchored when the panel fills it in.
        }
        syncSlider();
        text.getDocument().addDocumentListener(new DocumentListener() {
            @Override
            public void insertUpdate(DocumentEvent e) {
                typed();
            }

            @Override
            public void removeUpdate(DocumentEvent e) {
                typed();
            }

            @Override
            public void changedUpdate(DocumentEvent e) {
                typed();
            }
        });
    }

    /** A text value the preview follows once entered (Enter, leaving the field), not while half typed. */
    private void followOnceEntered() {
        text.addActionListener(e -> fire());
        text.addFocusListener(new java.awt.event.FocusAdapter() {
            @Override
            public void focusLost(java.awt.event.FocusEvent e) {
                fire();
            }
        });
    }

    private void choose() {
        JFileChooser fc = new JFileChooser();
        if (!value().isEmpty()) fc.setSelectedFile(new java.io.File(value()));
        int r = spec.writes ? fc.showSaveDialog(text) : fc.showOpenDialog(text);
        if (r != JFileChooser.APPROVE_OPTION) return;
        text.setText(fc.getSelectedFile().getPath());
        if (!spec.writes) fire();
    }

    static boolean hasSlider(ParamSpec p) {
        if (Double.isNaN(p.min) || Double.isNaN(p.max)) return false;
        if (log(p)) return true;
        return p.max - p.min <= MAX_LINEAR_SPAN;
    }

    private static boolean log(ParamSpec p) {
        return "log".equals(p.scale) && p.min > 0;
    }

    /** Centres an open range's slider on {@code x} (once, on the first positive value). */
    private void anchor(double x) {
        if (!floating || anchored || !(x > 0) || Double.isInfinite(x)) return;
        anchored = true;
        lo = Math.max(x / 8, Double.isNaN(spec.min) ? 0 : spec.min);
        hi = Double.isNaN(spec.max) ? x * 8 : Math.min(x * 8, spec.max);
        logScale = lo > 0;
        slider.setVisible(label.isVisible());
    }

    private void typed() {
        if (quiet) return;
        syncSlider();
        showProblem();
        fire();
    }

    private void fire() {
        if (!quiet) onChange.run();
    }

    /** The value as it stands, as text. */
    String value() {
        return choice != null ? (String) choice.getSelectedItem() : text.getText().trim();
    }

    /** Sets the value without telling the panel (it asks for one preview after a batch). */
    void set(String v) {
        quiet = true;
        if (choice != null) {
            choice.setSelectedItem(v);
        } else {
            String shown = v;
            try {
                double x = Double.parseDouble(v);
                anchor(x);
                shown = spec.isInt() ? Long.toString(Math.round(x)) : format(x);
            } catch (NumberFormatException e) {
                // Shown as given; problem() names it.
            }
            text.setText(shown);
            syncSlider();
        }
        quiet = false;
        showProblem();
    }

    /** What is wrong with the value (with the allowed range), or null. */
    String problem() {
        // A file's problems (missing, not weights) and a region's (outside the image) are
        // named by the library when it runs.
        if (choice != null || spec.isText()) return null;
        String v = value();
        double x;
        try {
            x = Double.parseDouble(v);
        } catch (NumberFormatException e) {
            return v.isEmpty() ? "enter a value in " + spec.rangeText() : "\"" + v + "\" is not a number; allowed: "
                    + spec.rangeText();
        }
        if (spec.isInt() && x != Math.rint(x)) return "a whole number in " + spec.rangeText();
        if (!spec.inRange(x)) return ParamSpec.fmt(x) + " is outside " + spec.rangeText();
        return null;
    }

    private void showProblem() {
        String p = problem();
        error.setText(p == null ? "" : p);
        error.setVisible(p != null);
        if (text != null) text.setForeground(p == null ? Color.black : error.getForeground());
    }

    void setVisible(boolean on) {
        for (JComponent c : new JComponent[] {label, text, choice, browse}) {
            if (c != null) c.setVisible(on);
        }
        if (slider != null) slider.setVisible(on && (!floating || anchored));
        error.setVisible(on && problem() != null);
    }

    boolean isVisible() {
        return label.isVisible();
    }

    private void syncSlider() {
        if (slider == null || (floating && !anchored)) return;
        try {
            double x = Double.parseDouble(value());
            boolean was = quiet;
            quiet = true;
            slider.setValue(toSlider(x));
            quiet = was;
        } catch (NumberFormatException e) {
            // The slider stays where it was until the text is a number again.
        }
    }

    private double fromSlider(int pos) {
        double t = pos / (double) STEPS;
        double x = logScale ? Math.exp(Math.log(lo) + t * (Math.log(hi) - Math.log(lo))) : lo + t * (hi - lo);
        return spec.isInt() ? Math.round(x) : x;
    }

    private int toSlider(double x) {
        double t = logScale ? (Math.log(Math.max(x, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))
                : (x - lo) / (hi - lo);
        return (int) Math.round(Math.max(0, Math.min(1, t)) * STEPS);
    }

    private String format(double x) {
        return spec.isInt() ? Long.toString(Math.round(x)) : DenoiseCommand.fmt(x);
    }
}
