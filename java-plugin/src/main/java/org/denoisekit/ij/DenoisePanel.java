package org.denoisekit.ij;

import ij.IJ;
import ij.ImageListener;
import ij.ImagePlus;
import ij.Prefs;
import ij.WindowManager;
import ij.gui.Roi;
import ij.gui.RoiListener;
import ij.plugin.frame.Recorder;
import java.awt.BorderLayout;
import java.awt.Color;
import java.awt.Component;
import java.awt.Dimension;
import java.awt.FlowLayout;
import java.awt.Font;
import java.awt.GridBagConstraints;
import java.awt.GridBagLayout;
import java.awt.Insets;
import java.awt.Rectangle;
import java.awt.event.ActionEvent;
import java.awt.event.KeyEvent;
import java.awt.event.WindowAdapter;
import java.awt.event.WindowEvent;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.swing.AbstractAction;
import javax.swing.BorderFactory;
import javax.swing.DefaultListCellRenderer;
import javax.swing.DefaultListModel;
import javax.swing.JButton;
import javax.swing.JCheckBox;
import javax.swing.JComboBox;
import javax.swing.JComponent;
import javax.swing.JFrame;
import javax.swing.JLabel;
import javax.swing.JList;
import javax.swing.JPanel;
import javax.swing.JProgressBar;
import javax.swing.JScrollPane;
import javax.swing.KeyStroke;
import javax.swing.ListSelectionModel;
import javax.swing.SwingUtilities;
import org.denoisekit.DenoiseKitException;
import org.denoisekit.Images;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;
import org.denoisekit.ParamSpec;

/**
 * Plugins &gt; DenoiseKit &gt; Denoise...: one non-modal window per image. The methods,
 * grouped by kind, on the left; the chosen method's parameters (only those that apply to
 * this image) with sliders on the right; below, a before/after view of the preview region
 * that follows every change, the noise readout, the residual check, and Apply with its
 * progress bar and Stop (or Esc). Everything is built from the native registry; Apply
 * records the {@code run("Denoise...", ...)} line that replays the result exactly.
 *
 * <p>Work runs off the event thread: one thread for previews (a newer change cancels the
 * preview in flight, natively), one for everything else (loading a method, Auto, Suggest,
 * Apply), whose job Stop and Esc cancel.
 */
public final class DenoisePanel extends JFrame implements ImageListener, RoiListener {
    private static final long serialVersionUID = 1L;
    /** The panel open on each image: Denoise... again brings it to the front. */
    private static final Map<ImagePlus, DenoisePanel> OPEN = new WeakHashMap<ImagePlus, DenoisePanel>();
    /** The longest self-supervised search the panel runs by itself on a method, in ms. */
    private static final double OPENING_TUNE_MS = 2000;
    /** Method runs a search takes: golden sections on one parameter (SURE: two per trial). */
    private static final int SEARCH_RUNS = 13;
    private static final String PREF = "denoisekit.panel.";
    private static final Color WARN = new Color(0xb0, 0x30, 0x00);

    private final ImagePlus imp;
    private final List<MethodSpec> methods = NativeBridge.methods();
    private MethodSpec method;
    private final List<ParamRow> rows = new ArrayList<ParamRow>();
    private final List<JComboBox<String>> imageInputs = new ArrayList<JComboBox<String>>();

    private final DefaultListModel<Object> listModel = new DefaultListModel<Object>();
    private final JList<Object> list = new JList<Object>(listModel);
    private final JLabel title = new JLabel();
    private final JLabel summary = new JLabel();
    private final JPanel params = new JPanel(new GridBagLayout());
    private final JLabel noiseLine = new JLabel(" ");
    private final JLabel strengthLine = new JLabel(" ");
    private final JLabel residualLine = new JLabel(" ");
    private final JLabel regionLine = new JLabel(" ");
    private final JLabel deviceLine = new JLabel(" ");
    private final JComboBox<String> backend = new JComboBox<String>(NativeBridge.backends());
    private final JComboBox<String> scope = new JComboBox<String>(DenoiseJob.SCOPES.toArray(new String[0]));
    private final JComboBox<String> zAxis = new JComboBox<String>(DenoiseJob.Z_AXES.toArray(new String[0]));
    private final JCheckBox inPlace = new JCheckBox("In place (modify the original)");
    private final JCheckBox floatResult = new JCheckBox("32-bit result");
    private final JCheckBox nanMasked = new JCheckBox("NaN pixels as masked-out");
    private final JCheckBox preview = new JCheckBox("Preview", true);
    private final JComboBox<RegionView.Mode> viewMode = new JComboBox<RegionView.Mode>(RegionView.Mode.values());
    private final RegionView view = new RegionView();
    private final JProgressBar progress = new JProgressBar(0, 1000);
    private final JLabel progressText = new JLabel(" ");
    private final JButton auto = new JButton("Auto");
    private final JButton defaultsButton = new JButton("Defaults");
    private final JButton suggest = new JButton("Suggest a method");
    private final JButton apply = new JButton("Apply");
    private final JButton stop = new JButton("Stop");

    private final ExecutorService tasks = Executors.newSingleThreadExecutor(daemon("DenoiseKit panel"));
    /** The jobs Stop cancels, queued or running ({@link #submit}). */
    private final Set<Future<?>> stoppable = ConcurrentHashMap.newKeySet();
    private final Previewer previewer = new Previewer();
    /** Noise-derived defaults of the method on the channel and frame on screen. */
    private Map<String, String> defaults = new HashMap<String, String>();
    /** noise_model=auto's choice on the plane on screen, per method. */
    private final Map<String, Map<String, String>> autoNoise = new HashMap<String, Map<String, String>>();
    /** Set while rows are filled in bulk: one preview for the batch, not one per field. */
    private boolean loading;
    private volatile boolean closed;

    /** Opens (or brings forward) the panel on {@code imp}, on {@code methodId} with {@code values} if given. */
    public static DenoisePanel open(final ImagePlus imp, final String methodId, final Map<String, String> values) {
        final DenoisePanel[] out = new DenoisePanel[1];
        Runnable r = new Runnable() {
            @Override
            public void run() {
                DenoisePanel p;
                synchronized (OPEN) {
                    p = OPEN.get(imp);
                    if (p == null || p.closed) {
                        p = new DenoisePanel(imp);
                        OPEN.put(imp, p);
                        p.start(methodId, values);
                    } else if (methodId != null) {
                        p.select(methodId, values);
                    }
                }
                p.setVisible(true);
                p.toFront();
                out[0] = p;
            }
        };
        if (SwingUtilities.isEventDispatchThread()) r.run();
        else {
            try {
                SwingUtilities.invokeAndWait(r);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        return out[0];
    }

    private DenoisePanel(ImagePlus imp) {
        super("DenoiseKit - " + imp.getTitle());
        this.imp = imp;
        setDefaultCloseOperation(DISPOSE_ON_CLOSE);
        build();
        addWindowListener(new WindowAdapter() {
            @Override
            public void windowClosed(WindowEvent e) {
                shutdown();
            }
        });
        ImagePlus.addImageListener(this);
        Roi.addRoiListener(this);
    }

    // ---- layout ----

    private void build() {
        // Names let the GUI tests find what a person would look at.
        list.setName("methods");
        noiseLine.setName("noise");
        strengthLine.setName("strength");
        residualLine.setName("residual");
        regionLine.setName("region");
        progress.setName("progress");
        progressText.setName("progress-text");
        viewMode.setName("view");
        // Grouped by kind, the kinds in the order the registry first lists them, each under
        // the heading the registry gives it.
        Map<String, List<MethodSpec>> byKind = new LinkedHashMap<String, List<MethodSpec>>();
        for (MethodSpec m : methods) {
            if (!byKind.containsKey(m.kind)) byKind.put(m.kind, new ArrayList<MethodSpec>());
            byKind.get(m.kind).add(m);
        }
        for (List<MethodSpec> group : byKind.values()) {
            listModel.addElement(group.get(0).kindTitle);
            for (MethodSpec m : group) listModel.addElement(m);
        }
        list.setSelectionMode(ListSelectionModel.SINGLE_SELECTION);
        list.setCellRenderer(new DefaultListCellRenderer() {
            @Override
            public Component getListCellRendererComponent(JList<?> l, Object v, int i, boolean sel, boolean focus) {
                boolean header = v instanceof String;
                JLabel c = (JLabel) super.getListCellRendererComponent(l, header ? v : ((MethodSpec) v).name, i,
                        sel && !header, focus && !header);
                if (header) {
                    c.setFont(c.getFont().deriveFont(Font.BOLD));
                    c.setForeground(Color.darkGray);
                } else {
                    c.setBorder(BorderFactory.createEmptyBorder(1, 14, 1, 2));
                    c.setToolTipText(htmlWrap(((MethodSpec) v).summary, 60));
                }
                return c;
            }
        });
        list.addListSelectionListener(e -> {
            if (e.getValueIsAdjusting()) return;
            Object v = list.getSelectedValue();
            if (v instanceof String) {
                // A group title: keep the method that was chosen.
                if (method != null) list.setSelectedValue(method, true);
                return;
            }
            Map<String, String> values = pendingValues;
            pendingValues = null;
            if (v instanceof MethodSpec && (v != method || values != null)) load((MethodSpec) v, values);
        });

        JPanel right = new JPanel(new BorderLayout(4, 4));
        title.setFont(title.getFont().deriveFont(Font.BOLD, 14f));
        JPanel head = new JPanel(new BorderLayout());
        head.add(title, BorderLayout.NORTH);
        head.add(summary, BorderLayout.CENTER);
        right.add(head, BorderLayout.NORTH);
        right.add(params, BorderLayout.CENTER);
        JPanel buttons = new JPanel(new FlowLayout(FlowLayout.LEFT, 4, 0));
        buttons.add(auto);
        buttons.add(defaultsButton);
        buttons.add(suggest);
        auto.setToolTipText("Chooses the strength from the image itself (self-supervised); under the "
                + "Poisson-Gaussian model fits the camera first");
        defaultsButton.setToolTipText("Every field back to the values derived from the noise estimate");
        suggest.setToolTipText("Tunes every denoiser on the slice on screen and selects the expected best");
        right.add(buttons, BorderLayout.SOUTH);

        JPanel top = new JPanel(new BorderLayout(8, 0));
        JScrollPane listScroll = new JScrollPane(list);
        listScroll.setPreferredSize(new Dimension(260, 300));
        top.add(listScroll, BorderLayout.WEST);
        top.add(right, BorderLayout.CENTER);

        JPanel info = new JPanel(new GridBagLayout());
        GridBagConstraints c = new GridBagConstraints();
        c.gridx = 0;
        c.anchor = GridBagConstraints.WEST;
        c.fill = GridBagConstraints.HORIZONTAL;
        c.weightx = 1;
        for (JLabel l : new JLabel[] {noiseLine, strengthLine, residualLine, regionLine, deviceLine}) info.add(l, c);

        JPanel viewBar = new JPanel(new FlowLayout(FlowLayout.LEFT, 6, 0));
        viewBar.add(preview);
        viewBar.add(new JLabel("View:"));
        viewBar.add(viewMode);
        viewMode.addActionListener(e -> view.setMode((RegionView.Mode) viewMode.getSelectedItem()));
        preview.addActionListener(e -> changed());
        JPanel middle = new JPanel(new BorderLayout(4, 4));
        middle.add(viewBar, BorderLayout.NORTH);
        middle.add(view, BorderLayout.CENTER);
        middle.add(info, BorderLayout.SOUTH);

        JPanel options = new JPanel(new FlowLayout(FlowLayout.LEFT, 6, 0));
        options.add(new JLabel("Device:"));
        options.add(backend);
        if (imp.getStackSize() > 1) {
            options.add(new JLabel("Denoise:"));
            options.add(scope);
        }
        if (imp.getNFrames() > 1) {
            options.add(new JLabel("3rd axis:"));
            options.add(zAxis);
            // A time-lapse of single planes is denoised across time by default.
            zAxis.setSelectedItem(DenoiseJob.defaultAxis(imp) == Pixels.Axis.FRAMES ? DenoiseJob.FRAMES
                    : DenoiseJob.SLICES);
        }
        options.add(inPlace);
        options.add(floatResult);
        if (imp.getBitDepth() == 32) options.add(nanMasked);
        backend.addActionListener(e -> {
            deviceLine.setText("Device: " + DenoiseCommand.deviceLine((String) backend.getSelectedItem()));
            changed();
        });
        zAxis.addActionListener(e -> {
            updateVisibility();
            changed();
        });
        nanMasked.addActionListener(e -> changed());
        JPanel run = new JPanel(new BorderLayout(6, 0));
        JPanel runButtons = new JPanel(new FlowLayout(FlowLayout.RIGHT, 4, 0));
        runButtons.add(stop);
        runButtons.add(apply);
        stop.setEnabled(false);
        progress.setPreferredSize(new Dimension(160, progress.getPreferredSize().height));
        run.add(progress, BorderLayout.WEST);
        run.add(progressText, BorderLayout.CENTER);
        run.add(runButtons, BorderLayout.EAST);
        JPanel bottom = new JPanel(new BorderLayout(4, 4));
        bottom.add(options, BorderLayout.NORTH);
        bottom.add(run, BorderLayout.SOUTH);

        JPanel all = new JPanel(new BorderLayout(6, 6));
        all.setBorder(BorderFactory.createEmptyBorder(8, 8, 8, 8));
        all.add(top, BorderLayout.NORTH);
        all.add(middle, BorderLayout.CENTER);
        all.add(bottom, BorderLayout.SOUTH);
        setContentPane(all);

        auto.addActionListener(e -> submit("Auto", () -> auto()));
        defaultsButton.addActionListener(e -> submit("Defaults", () -> resetToDefaults()));
        suggest.addActionListener(e -> submit("Suggest", () -> suggest()));
        apply.addActionListener(e -> applyNow());
        stop.addActionListener(e -> stopTask());
        all.getInputMap(JComponent.WHEN_IN_FOCUSED_WINDOW).put(KeyStroke.getKeyStroke(KeyEvent.VK_ESCAPE, 0), "stop");
        all.getActionMap().put("stop", new AbstractAction() {
            @Override
            public void actionPerformed(ActionEvent e) {
                stopTask();
            }
        });
        deviceLine.setText("Device: " + DenoiseCommand.deviceLine(NativeBridge.backends()[0]));
        residualLine.setText("Residual check: shown with the preview");
    }

    private void start(String methodId, Map<String, String> values) {
        String id = methodId != null ? methodId : Prefs.get(PREF + "method", null);
        MethodSpec m = null;
        for (MethodSpec s : methods) {
            if (s.id.equals(id)) m = s;
        }
        if (m == null) m = methods.get(0);
        pack();
        Rectangle screen = getGraphicsConfiguration().getBounds();
        if (imp.getWindow() != null) {
            Rectangle w = imp.getWindow().getBounds();
            setLocation(Math.min(w.x + w.width + 10, Math.max(0, screen.x + screen.width - getWidth())), w.y);
        }
        select(m.id, values);
        submit("Noise", false, () -> measureNoise(), null);
    }

    /** Values for the method the list is about to select (its listener takes them). */
    private Map<String, String> pendingValues;
    /** What the strength line says once given values are in place. */
    private String givenNote = "Strength: as chosen";

    /** Selects a method in the list and loads it with {@code values} (null: remembered or derived). */
    void select(String id, Map<String, String> values) {
        select(id, values, "Strength: as chosen");
    }

    /** As above; {@code note} is the strength line once {@code values} are in place. */
    void select(String id, Map<String, String> values, String note) {
        givenNote = note;
        for (MethodSpec m : methods) {
            if (!m.id.equals(id)) continue;
            if (list.getSelectedValue() == m) {
                if (values != null || method != m) load(m, values);
            } else {
                pendingValues = values;
                list.setSelectedValue(m, true);
            }
            return;
        }
    }

    /** The method's rows: built at once, values filled in by a task (noise estimation). */
    private void load(final MethodSpec m, final Map<String, String> given) {
        if (m == method && given == null) return;
        method = m;
        Prefs.set(PREF + "method", m.id);
        title.setText(m.name + "   (" + m.id + ")");
        summary.setText(htmlWrap(m.summary, 90));
        rows.clear();
        imageInputs.clear();
        params.removeAll();
        GridBagConstraints c = new GridBagConstraints();
        c.insets = new Insets(1, 2, 1, 2);
        c.anchor = GridBagConstraints.WEST;
        int y = 0;
        loading = true;
        for (ParamSpec p : m.params) {
            String v = p.isChoice() || p.isText() ? p.defaultChoice
                    : Double.isNaN(p.defaultNumber) ? "" : ParamSpec.fmt(p.defaultNumber);
            ParamRow row = new ParamRow(p, v, this::fieldChanged, this::selectionBounds);
            rows.add(row);
            c.gridy = y++;
            c.gridx = 0;
            c.weightx = 0;
            c.fill = GridBagConstraints.NONE;
            params.add(row.label, c);
            c.gridx = 1;
            c.fill = GridBagConstraints.HORIZONTAL;
            c.weightx = 1;
            if (row.slider != null) params.add(row.slider, c);
            if (row.choice != null) params.add(row.choice, c);
            if (row.browse != null) params.add(row.text, c);
            c.gridx = 2;
            c.weightx = 0;
            if (row.browse != null) params.add(row.browse, c);
            else if (row.text != null) params.add(row.text, c);
            c.gridy = y++;
            c.gridx = 1;
            c.gridwidth = 2;
            params.add(row.error, c);
            c.gridwidth = 1;
        }
        for (MethodSpec.ImageInput in : m.images) {
            JComboBox<String> box = new JComboBox<String>(imageChoices());
            box.setToolTipText(htmlWrap(in.help, 60));
            box.addActionListener(e -> fieldChanged());
            imageInputs.add(box);
            c.gridy = y++;
            c.gridx = 0;
            params.add(new JLabel(in.label + " (image)"), c);
            c.gridx = 1;
            c.gridwidth = 2;
            params.add(box, c);
            c.gridwidth = 1;
        }
        loading = false;
        updateVisibility();
        setEnabledAll(false);
        strengthLine.setText("Strength: measuring the noise...");
        view.showMessage("Measuring the noise on the plane on screen...");
        params.revalidate();
        params.repaint();
        pack();
        submit("Load", false, () -> fill(m, given), null);
    }

    /** Fills the rows: given values, else remembered ones, else the noise-derived defaults. */
    private void fill(final MethodSpec m, final Map<String, String> given) {
        final Map<String, String> remembered = DenoiseCommand.parseOptions(Prefs.get(PREF + m.id, ""));
        // The strength and the camera follow the model the fields will hold: a remembered
        // poisson_gaussian opened with gain 1, offset 0 and a strength in grey levels where
        // the image's own choice was gaussian.
        String model = given != null && given.containsKey(DenoiseJob.NOISE_MODEL) ? given.get(DenoiseJob.NOISE_MODEL)
                : remembered.get(DenoiseJob.NOISE_MODEL);
        Map<String, String> under;
        try {
            under = defaultsUnder(m, model, given);
        } catch (DenoiseKitException e) {
            if (model == null) throw e;
            // The remembered model's camera does not fit this image: it opens at the image's
            // own choice, and says why.
            IJ.log("DenoiseKit: " + DenoiseJob.NOISE_MODEL + "=" + model + " not restored on " + imp.getTitle()
                    + ": " + DenoiseCommand.explain(e));
            remembered.remove(DenoiseJob.NOISE_MODEL);
            under = defaultsUnder(m, null, given);
        }
        final Map<String, String> d = under;
        onEdt(() -> {
            if (method != m) return;
            defaults = d;
            loading = true;
            for (ParamRow r : rows) {
                String key = r.spec.key;
                String v = given != null && given.containsKey(key) ? given.get(key)
                        : remembered.containsKey(key) && rememberable(r.spec) ? remembered.get(key) : d.get(key);
                if (v != null) r.set(v);
            }
            loading = false;
            updateVisibility();
            setEnabledAll(true);
            boolean tunable = tunableNow(m);
            strengthLine.setText(given != null ? givenNote : tunable && "denoise".equals(m.kind)
                    ? "Strength: from the noise estimate" : "Strength: the method's defaults");
            if (given == null && tunable && "denoise".equals(m.kind)) {
                // The first preview waits for the strength (a second at most): it would
                // otherwise compete with the timing for the cores and be replaced at once.
                submit("Choosing the strength", true, () -> openingStrength(m), this::changed);
            } else {
                changed();
            }
        });
    }

    /**
     * Values that describe the user's taste, not this image: a strength derived from the
     * noise, or a camera's calibration, is measured on each image instead. A file to write
     * is not remembered either: a later session would overwrite it unasked; nor a region,
     * which belongs to one image.
     */
    private static boolean rememberable(ParamSpec p) {
        return Double.isNaN(p.defaultTimesNoise) && p.when == null && !p.tunable && !p.isText();
    }

    /** The current area selection's bounds within the image, or null when there is none. */
    private Rectangle selectionBounds() {
        Roi roi = imp.getRoi();
        if (roi == null || !roi.isArea()) return null;
        Rectangle r = roi.getBounds().intersection(new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
        return r.isEmpty() ? null : r;
    }

    private void remember() {
        StringBuilder b = new StringBuilder();
        for (ParamRow r : rows) {
            if (rememberable(r.spec)) b.append(r.spec.key).append('=').append(DenoiseJob.macroValue(r.value())).append(' ');
        }
        Prefs.set(PREF + method.id, b.toString().trim());
    }

    /**
     * Whether {@code m} has a tunable field that the current settings use (zs_n2n's PSF only
     * when it trains on synthetic scenes). On the EDT.
     */
    private boolean tunableNow(MethodSpec m) {
        Map<String, String> now = new HashMap<String, String>();
        for (ParamRow r : rows) now.put(r.spec.key, r.value());
        for (ParamSpec p : m.params) {
            if (p.tunable && (p.when == null || p.when[1].equals(now.get(p.when[0])))) return true;
        }
        return false;
    }

    /** Hides what does not apply: z parameters on a 2D image, camera fields under another model. */
    private void updateVisibility() {
        boolean threeD = axis().length(imp) > 1;
        Map<String, String> now = new HashMap<String, String>();
        for (ParamRow r : rows) now.put(r.spec.key, r.value());
        for (ParamRow r : rows) {
            boolean on = (threeD || !r.spec.alongZ)
                    && (r.spec.when == null || r.spec.when[1].equals(now.get(r.spec.when[0])));
            if (on != r.isVisible()) r.setVisible(on);
        }
        params.revalidate();
    }

    private void fieldChanged() {
        if (loading) return;
        updateVisibility();
        changed();
    }

    private Pixels.Axis axis() {
        return imp.getNFrames() > 1 && DenoiseJob.FRAMES.equals(zAxis.getSelectedItem()) ? Pixels.Axis.FRAMES
                : Pixels.Axis.SLICES;
    }

    /** The z-stack of the channel and frame on screen: where defaults and noise are measured. */
    private Pixels plane() {
        return Pixels.measured(imp, imp.getC(), 1, imp.getNSlices(), imp.getT());
    }

    /** The slice on screen only: where Auto and Suggest search (quick, and what is seen). */
    private Pixels slice() {
        return Pixels.measured(imp, imp.getC(), imp.getZ(), imp.getZ(), imp.getT());
    }

    private void measureNoise() {
        Pixels here = plane();
        double sigma = NativeBridge.estimateNoise(here.data, here.dims);
        String correlation;
        try {
            correlation = NativeBridge.noiseCorrelation(here.data, here.dims);
        } catch (DenoiseKitException e) {
            correlation = "correlation not measured: " + e.getMessage().replaceFirst("^invalid input: ", "");
        }
        final String text = "Estimated noise sigma: " + DenoiseCommand.fmt(sigma) + " grey levels, " + correlation + ".";
        onEdt(() -> {
            noiseText = text;
            showNoiseLine();
        });
    }

    private String noiseText = "";
    private String modelText = "";

    private void showNoiseLine() {
        noiseLine.setText(htmlWrap(noiseText + (modelText.isEmpty() ? "" : " " + modelText), 110));
    }

    // ---- settings ----

    /** The settings as they stand, read on the event thread; {@link Settings#problem} names a bad field. */
    private Settings settings() {
        Settings s = new Settings();
        s.method = method;
        s.backend = (String) backend.getSelectedItem();
        s.axis = axis();
        s.nanMasked = imp.getBitDepth() == 32 && nanMasked.isSelected();
        s.keys = new String[rows.size()];
        s.values = new String[rows.size()];
        for (int i = 0; i < rows.size(); i++) {
            ParamRow r = rows.get(i);
            s.keys[i] = r.spec.key;
            s.values[i] = r.value();
            String p = r.problem();
            if (p != null && s.problem == null) s.problem = r.spec.label + ": " + p;
        }
        s.titles = new String[imageInputs.size()];
        for (int i = 0; i < s.titles.length; i++) s.titles[i] = (String) imageInputs.get(i).getSelectedItem();
        s.region = DenoiseCommand.previewRegion(imp);
        return s;
    }

    /** The settings with noise_model=auto pinned and the image inputs read (off the event thread). */
    private void complete(Settings s) {
        int model = java.util.Arrays.asList(s.keys).indexOf(DenoiseJob.NOISE_MODEL);
        if (model >= 0 && DenoiseJob.autoModel(s.method, s.values[model])) {
            Map<String, String> chosen;
            boolean fresh = false;
            String key = s.method.id + "@" + imp.getC() + "," + imp.getT();
            synchronized (autoNoise) {
                chosen = autoNoise.get(key);
            }
            if (chosen == null) {
                Pixels here = plane();
                chosen = DenoiseCommand.parseOptions(NativeBridge.resolve(s.method.id, here.data, here.dims,
                        new String[] {DenoiseJob.NOISE_MODEL}, new String[] {s.values[model]}));
                synchronized (autoNoise) {
                    autoNoise.put(key, chosen);
                }
                fresh = true;
                String picked = chosen.get(DenoiseJob.NOISE_MODEL);
                StringBuilder camera = new StringBuilder();
                for (String k : cameraKeys(s.method, picked)) {
                    camera.append(camera.length() == 0 ? " (" : ", ")
                            .append(s.method.param(k).label.toLowerCase(java.util.Locale.ROOT)).append(' ')
                            .append(shortValue(chosen.get(k)));
                }
                if (camera.length() > 0) camera.append(')');
                final String line = "Noise model: " + s.values[model] + " chose " + picked + camera
                        + " on the plane on screen.";
                onEdt(() -> {
                    modelText = line;
                    showNoiseLine();
                });
            }
            String chose = DenoiseCommand.pinAutoNoiseModel(s.method, s.keys, s.values, chosen);
            if (fresh && chose != null) IJ.log(chose);
        }
        // A title left in a list whose switch is off is not sent (the library refuses an
        // image nothing chose).
        s.inputs = ImageInputs.of(imp, s.axis, s.method, s.keys, s.values, s.titles, false);
        s.images = s.inputs.at(imp.getC(), s.axis.other(imp));
    }

    /** A number to four significant digits for people; anything else as it is. */
    static String shortValue(String v) {
        if (v == null) return "";
        try {
            return DenoiseCommand.fmt(Double.parseDouble(v));
        } catch (NumberFormatException e) {
            return v;
        }
    }

    static final class Settings {
        MethodSpec method;
        String backend;
        Pixels.Axis axis;
        boolean nanMasked;
        String[] keys;
        String[] values;
        String[] titles;
        /** The image inputs, read per channel and position by a job. */
        ImageInputs inputs;
        /** The image inputs of the plane on screen. */
        Images images;
        Rectangle region;
        String problem;
    }


    // ---- preview ----

    /** Something changed: a new preview replaces the one in flight. */
    private void changed() {
        if (loading || method == null || closed) return;
        Rectangle r = DenoiseCommand.previewRegion(imp);
        Roi roi = imp.getRoi();
        regionLine.setText("Preview: " + (roi != null && roi.isArea() ? "the selection" : "the centre of the slice")
                + " (" + r.width + "x" + r.height + " at " + r.x + ", " + r.y + "), slice " + imp.getCurrentSlice()
                + (roi != null && roi.isArea() ? "" : "; draw a selection to preview elsewhere"));
        if (!preview.isSelected()) {
            previewer.request(null);
            view.showMessage("Preview is off");
            return;
        }
        Settings s = settings();
        if (s.problem != null) {
            previewer.request(null);
            view.showMessage("Preview paused: " + s.problem);
            return;
        }
        previewer.request(s);
    }

    /** The latest preview: for tests and the latency benchmark (GuiHarness). */
    public static final class Shown {
        public final long generation;
        public final float[] pixels;
        public final Rectangle region;
        /** From the change that asked for it to its pixels handed to the view. */
        public final double latencyMs;

        Shown(long generation, float[] pixels, Rectangle region, double latencyMs) {
            this.generation = generation;
            this.pixels = pixels;
            this.region = region;
            this.latencyMs = latencyMs;
        }
    }

    private volatile Shown shown;

    /** Intermediate results shown while previews trained (GuiHarness checks them). */
    private final java.util.concurrent.atomic.AtomicLong interims = new java.util.concurrent.atomic.AtomicLong();

    public long interimsShown() {
        return interims.get();
    }

    public Shown shown() {
        return shown;
    }

    /** The view, for tests: its residual contrast. */
    public double residualSpan() {
        return view.residualSpan();
    }

    public byte[] residualGreys() {
        return view.residualGreys();
    }

    /** One thread that always computes the newest request; a newer one cancels the one in flight. */
    private final class Previewer implements Runnable {
        private Settings pending;
        private long requested;
        private long requestedAt;
        private CancelWatch running;
        private final Thread thread = daemon("DenoiseKit preview").newThread(this);

        Previewer() {
            thread.start();
        }

        synchronized void request(Settings s) {
            pending = s;
            requested++;
            requestedAt = System.nanoTime();
            if (running != null) running.cancel();
            notifyAll();
        }

        synchronized void stop() {
            closed = true;
            if (running != null) running.cancel();
            notifyAll();
        }

        @Override
        public void run() {
            long done = 0;
            while (true) {
                Settings s;
                long gen, at;
                CancelWatch watch;
                synchronized (this) {
                    while (!closed && (requested == done || pending == null)) {
                        if (requested != done && pending == null) done = requested;
                        try {
                            wait();
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                    if (closed) return;
                    s = pending;
                    gen = requested;
                    at = requestedAt;
                    done = gen;
                    running = watch = new CancelWatch(Thread.currentThread(), false, new CancelWatch.Progress() {
                        @Override
                        public void update(double f) {
                        }

                        @Override
                        public void note(String text) {
                            // A learned method trains on the previewed region: say how.
                            onEdt(() -> {
                                if (busyCount == 0) progressText.setText(PREVIEW + text);
                            });
                        }

                        @Override
                        public boolean wantsInterim() {
                            return true;
                        }

                        @Override
                        public void interim(float[] pixels) {
                            showInterim(pixels);
                        }
                    });
                }
                try {
                    compute(s, gen, at, watch);
                } catch (DenoiseKitException e) {
                    if (!"Cancelled".equals(e.getKind())) {
                        final String m = "Preview: " + DenoiseCommand.explain(e);
                        onEdt(() -> view.showMessage(m));
                    }
                } catch (RuntimeException e) {
                    final String m = "Preview failed: " + e;
                    onEdt(() -> view.showMessage(m));
                } catch (OutOfMemoryError e) {
                    final String m = "Preview: " + DenoiseCommand.outOfMemory(imp);
                    onEdt(() -> view.showMessage(m));
                } finally {
                    watch.close();
                    synchronized (this) {
                        running = null;
                    }
                    onEdt(() -> {
                        if (busyCount == 0 && progressText.getText().startsWith(PREVIEW)) progressText.setText(" ");
                    });
                }
            }
        }

        private boolean stale(long gen) {
            synchronized (this) {
                return requested != gen;
            }
        }

        /** What a preview in flight shows its intermediate results against. */
        private final class InterimView {
            final long gen;
            final DenoiseJob.Grown at;
            final NanFill fill;
            final float[] before;
            final double lo;
            final double hi;

            InterimView(long gen, DenoiseJob.Grown at, NanFill fill, float[] before, double lo, double hi) {
                this.gen = gen;
                this.at = at;
                this.fill = fill;
                this.before = before;
                this.lo = lo;
                this.hi = hi;
            }
        }

        private volatile InterimView interimView;

        /**
         * A learned method's current weights applied to the region while it trains: shown
         * in place of the last preview until the final result replaces it.
         */
        private void showInterim(float[] pixels) {
            final InterimView v = interimView;
            if (v == null || stale(v.gen)) return;
            final float[] after = v.at.crop(pixels, v.fill);
            if (after == null) return;
            final Rectangle r = v.at.region;
            interims.incrementAndGet();
            onEdt(() -> {
                // Never over this preview's final result, which may have been queued first.
                Shown last = shown;
                if (!stale(v.gen) && (last == null || last.generation < v.gen)) {
                    view.show(v.before, after, r.width, r.height, v.lo, v.hi);
                }
            });
        }

        private void compute(Settings s, final long gen, long at, CancelWatch watch) {
            complete(s);
            NanFill fill = s.nanMasked ? new NanFill() : null;
            final Rectangle r = s.region;
            int z = s.axis.current(imp);
            final float[] before = Pixels.of(imp, s.axis.indices(imp, imp.getC(), s.axis.other(imp), z, z), r).data;
            final double lo = imp.getDisplayRangeMin(), hi = imp.getDisplayRangeMax();
            DenoiseJob.Grown grown = new DenoiseJob.Grown(imp, s.axis, s.method, s.keys,
                    DenoiseJob.forCrop(s.method, s.values), r);
            String[] values = grown.values(s.method, s.values);
            interimView = new InterimView(gen, grown, fill, before, lo, hi);
            final float[] after;
            try {
                after = grown.denoise(s.method, s.keys, values, s.images, s.backend, fill, watch.job);
            } finally {
                interimView = null;
            }
            if (stale(gen)) return;
            final long requestedAt = at;
            onEdt(() -> {
                view.show(before, after, r.width, r.height, lo, hi);
                shown = new Shown(gen, after, r, (System.nanoTime() - requestedAt) / 1e6);
            });
            if (!"denoise".equals(s.method.kind)) {
                onEdt(() -> residualLine.setText(" "));
            } else if (!stale(gen)) {
                String warning;
                try {
                    Pixels in = fill != null ? Pixels.of(imp, s.axis.indices(imp, imp.getC(), s.axis.other(imp), z, z),
                            r, fill) : null;
                    warning = NativeBridge.residualCheck(in != null ? in.data : before, after,
                            new int[] {r.width, r.height, 1});
                } catch (DenoiseKitException e) {
                    warning = null;
                }
                final String w = warning;
                onEdt(() -> showResidualCheck(w));
            }
        }
    }

    private void showResidualCheck(String warning) {
        if (warning == null) {
            residualLine.setText("Residual check: not measured on this region");
            residualLine.setForeground(Color.darkGray);
        } else if (warning.isEmpty()) {
            residualLine.setText("Residual check: no structure in what this setting removes");
            residualLine.setForeground(new Color(0x20, 0x70, 0x20));
        } else {
            residualLine.setText(htmlWrap("Residual check: " + warning + " (View: residual shows it)", 110));
            residualLine.setForeground(WARN);
        }
        pack();
    }

    /**
     * When a method is loaded: its strength searched on the slice on screen when that is
     * quick here (one run on the search's share of the slice, timed, times the runs of a
     * search); else the line says how long Auto would take.
     */
    private void openingStrength(MethodSpec m) {
        final Settings s = onEdtGet(this::settings);
        if (method != m || s.problem != null) return;
        complete(s);
        Pixels on = slice();
        // Tuning runs on at most 2^18 pixels of the slice (tune.rs's budget): time a
        // centred crop of that size.
        int side = (int) Math.sqrt(1 << 18);
        Rectangle crop = new Rectangle(Math.max(0, (imp.getWidth() - side) / 2), Math.max(0, (imp.getHeight() - side) / 2),
                Math.min(side, imp.getWidth()), Math.min(side, imp.getHeight()));
        Pixels sample = Pixels.of(imp, new int[] {imp.getStackIndex(imp.getC(), imp.getZ(), imp.getT())}, crop,
                new NanFill());
        long t0 = System.nanoTime();
        try (CancelWatch w = watch("Choosing the strength")) {
            NativeBridge.denoise(m.id, sample.data, sample.dims, s.keys, DenoiseJob.forCrop(m, s.values), s.images,
                    "cpu", null, w.job);
        }
        double estimate = (System.nanoTime() - t0) / 1e6 * 2 * SEARCH_RUNS;
        if (estimate > OPENING_TUNE_MS) {
            final String text = "Strength: from the noise estimate; Auto searches it from the image (about "
                    + Math.max(1, Math.round(estimate / 1000)) + " s)";
            onEdt(() -> strengthLine.setText(text));
            return;
        }
        String chose = tune(m, on);
        if (chose != null) {
            onEdt(() -> strengthLine.setText("Strength: self-supervised from the slice on screen (" + chose
                    + "); Auto repeats it"));
        }
    }

    // ---- tasks (Auto, Defaults, Suggest, Apply) ----

    private interface Task {
        void run();
    }

    /** Runs a job on the panel's worker, with the buttons off until it ends; Stop cancels it. */
    private void submit(final String what, final Task t) {
        submit(what, true, t, null);
    }

    /**
     * Runs a task on the panel's worker, with the buttons off until it ends. Stop cancels it,
     * queued or running, when {@code canStop} (a job the user started); the panel's own set-up
     * (loading a method's fields) always runs, or the fields would stay empty. {@code after}
     * runs on the event thread once the task ended, whether it ran or was cancelled first.
     */
    private void submit(final String what, final boolean canStop, final Task t, final Runnable after) {
        setBusy(true, what);
        // Whoever claims the task says it ended: its body, or a cancel before it ran (the
        // body of a task cancelled while queued never runs, and the panel stayed busy).
        final AtomicBoolean claimed = new AtomicBoolean();
        final Runnable ended = () -> onEdt(() -> {
            if (after != null) after.run();
            setBusy(false, null);
        });
        FutureTask<Void> f = new FutureTask<Void>(() -> {
            if (!claimed.compareAndSet(false, true)) return;
            try {
                t.run();
            } catch (DenoiseKitException e) {
                if ("Cancelled".equals(e.getKind())) {
                    onEdt(() -> progressText.setText(what + ": stopped"));
                } else {
                    final String m = DenoiseCommand.explain(e);
                    onEdt(() -> {
                        progressText.setText(htmlWrap(what + ": " + m, 80));
                        progressText.setForeground(WARN);
                    });
                }
            } catch (RuntimeException e) {
                IJ.handleException(e);
            } catch (OutOfMemoryError e) {
                final String m = DenoiseCommand.outOfMemory(imp);
                onEdt(() -> {
                    progressText.setText(htmlWrap(what + ": " + m, 80));
                    progressText.setForeground(WARN);
                });
            } finally {
                ended.run();
            }
        }, null) {
            @Override
            protected void done() {
                stoppable.remove(this);
                if (claimed.compareAndSet(false, true)) ended.run();
            }
        };
        if (canStop) stoppable.add(f);
        tasks.execute(f);
    }

    /** Cancels every job queued or running: a method chosen during a job queues behind it. */
    private void stopTask() {
        for (Future<?> f : stoppable) f.cancel(true);
    }

    /** Tasks submitted and not finished (on the event thread): the buttons wait for all. */
    private int busyCount;

    private void setBusy(boolean busy, String what) {
        busyCount = Math.max(0, busyCount + (busy ? 1 : -1));
        boolean idle = busyCount == 0;
        stop.setEnabled(!idle);
        apply.setEnabled(idle);
        auto.setEnabled(idle);
        defaultsButton.setEnabled(idle);
        suggest.setEnabled(idle);
        if (busy) {
            progress.setIndeterminate(true);
            progressText.setForeground(Color.black);
            progressText.setText(what + "...");
        } else if (idle) {
            progress.setValue(0);
            progress.setIndeterminate(false);
            // A finished task's "...": what stays is a result or an error.
            String t = progressText.getText();
            if (t.endsWith("...") || t.endsWith(CANCELS)) progressText.setText(" ");
        }
    }

    private void setEnabledAll(boolean on) {
        for (ParamRow r : rows) {
            for (JComponent c : new JComponent[] {r.slider, r.text, r.choice, r.browse}) {
                if (c != null) c.setEnabled(on);
            }
        }
    }

    /** A watch for a task's native job: cancelled by Stop or Esc, its progress on the bar. */
    private CancelWatch watch(final String what) {
        final long t0 = System.nanoTime();
        return new CancelWatch(Thread.currentThread(), true, progressTo(what, t0));
    }

    /** Progress for the panel's bar and line, with the job's latest note (a training loss). */
    private CancelWatch.Progress progressTo(final String what, final long t0) {
        return new CancelWatch.Progress() {
            private volatile String note = "";

            @Override
            public void update(double f) {
                final String n = note;
                onEdt(() -> showProgress(what, f, t0, n));
            }

            @Override
            public void note(String text) {
                note = text;
            }
        };
    }

    private static final String CANCELS = "(Esc or Stop cancels)";
    private static final String PREVIEW = "Preview: ";

    private void showProgress(String what, double f, long t0, String note) {
        // A last poll may arrive after its task ended.
        if (busyCount == 0) return;
        progress.setIndeterminate(false);
        progress.setValue((int) Math.round(f * 1000));
        double s = (System.nanoTime() - t0) / 1e9;
        long left = f > 0.02 && s > 1 ? Math.round(s * (1 - f) / f) : 0;
        String eta = left >= 1 ? ", about " + left + " s left" : "";
        progressText.setText(what + ": " + Math.round(f * 100) + "%" + eta + (note.isEmpty() ? "" : "; " + note) + " "
                + CANCELS);
        IJ.showProgress(f);
    }

    /** Searches the tunable fields on {@code on}, the others kept; what it chose, or null. */
    private String tune(MethodSpec m, Pixels on) {
        final Settings s = onEdtGet(this::settings);
        if (s.problem != null) throw new DenoiseKitException("InvalidInput", s.problem);
        complete(s);
        List<String> keys = new ArrayList<String>();
        List<String> values = new ArrayList<String>();
        for (int i = 0; i < s.keys.length; i++) {
            if (!m.params.get(i).tunable) {
                keys.add(s.keys[i]);
                values.add(s.values[i]);
            }
        }
        Map<String, String> tuned;
        try (CancelWatch w = watch("Auto (self-supervised search)")) {
            tuned = DenoiseCommand.parseOptions(NativeBridge.tune(m.id, on.data, on.dims,
                    keys.toArray(new String[0]), values.toArray(new String[0]), s.images, w.job));
        }
        final Map<String, String> set = new LinkedHashMap<String, String>();
        for (ParamSpec p : m.params) {
            if (p.tunable && tuned.containsKey(p.key)) set.put(p.key, tuned.get(p.key));
        }
        StringBuilder chose = new StringBuilder();
        for (Map.Entry<String, String> e : set.entrySet()) {
            chose.append(e.getKey()).append('=').append(DenoiseCommand.fmt(Double.parseDouble(e.getValue()))).append(' ');
        }
        if (method != m) return null;
        onEdt(() -> setFields(set));
        IJ.log("DenoiseKit: self-supervised " + m.id + " " + chose.toString().trim());
        return chose.toString().trim();
    }

    private void setFields(Map<String, String> values) {
        loading = true;
        for (ParamRow r : rows) {
            String v = values.get(r.spec.key);
            if (v != null) r.set(v);
        }
        loading = false;
        updateVisibility();
        changed();
    }

    /** The Auto button: the camera fitted under the Poisson-Gaussian model, then the strength searched. */
    private void auto() {
        MethodSpec m = method;
        boolean tunable = onEdtGet(() -> tunableNow(m));
        fitCamera(m);
        if (!tunable) {
            resetToDefaults();
            return;
        }
        String chose = tune(m, slice());
        if (chose != null) {
            onEdt(() -> strengthLine.setText("Strength: self-supervised from the slice on screen (" + chose + ")"));
        }
    }

    /** Under the Poisson-Gaussian model, the camera's gain, offset and read noise fitted to the image. */
    private Map<String, String> fitCamera(MethodSpec m) {
        final Map<String, String> camera = cameraFor(m, onEdtGet(() -> rowValue(DenoiseJob.NOISE_MODEL)));
        if (camera != null) onEdt(() -> setFields(camera));
        return camera;
    }

    /**
     * The camera fitted to the slice on screen (logged) when {@code model} has camera fields
     * (Poisson-Gaussian), else null. Off the event thread.
     *
     * @throws DenoiseKitException when the image has too little to fit them on
     */
    private Map<String, String> cameraFor(MethodSpec m, String model) {
        if (cameraKeys(m, model).isEmpty()) return null;
        Pixels on = slice();
        String fit = NativeBridge.estimatePoissonGaussian(on.data, on.dims);
        Map<String, String> camera = DenoiseCommand.parseOptions(fit);
        if (!model.equals(camera.remove(DenoiseJob.NOISE_MODEL))) return null;
        IJ.log("DenoiseKit: camera noise fitted: " + fit);
        return camera;
    }

    /**
     * The method's defaults on the image on screen under noise model {@code model} (null or
     * auto: the image's own choice), the camera fitted to the image where the model has one;
     * values in {@code given} (null for none) are kept. Off the event thread.
     */
    private Map<String, String> defaultsUnder(MethodSpec m, String model, Map<String, String> given) {
        Pixels here = plane();
        boolean modelled = pins(m, model);
        Map<String, String> pinned = new LinkedHashMap<String, String>();
        if (modelled) {
            pinned.put(DenoiseJob.NOISE_MODEL, model);
            List<String> camera = cameraKeys(m, model);
            if (given == null || !given.keySet().containsAll(camera)) {
                Map<String, String> fitted = cameraFor(m, model);
                if (fitted != null) pinned.putAll(fitted);
            }
            for (String k : camera) {
                if (given != null && given.containsKey(k)) pinned.put(k, given.get(k));
            }
        }
        String[] k = pinned.keySet().toArray(new String[0]);
        String[] v = pinned.values().toArray(new String[0]);
        return DenoiseCommand.parseOptions(NativeBridge.resolve(m.id, here.data, here.dims,
                modelled ? k : null, modelled ? v : null));
    }

    /** The camera's fields under noise model {@code model}: those shown only under it. */
    private static List<String> cameraKeys(MethodSpec m, String model) {
        List<String> keys = new ArrayList<String>();
        for (ParamSpec p : m.params) {
            if (p.when != null && p.when[0].equals(DenoiseJob.NOISE_MODEL) && p.when[1].equalsIgnoreCase(model)) {
                keys.add(p.key);
            }
        }
        return keys;
    }

    /**
     * Whether noise model {@code model} (null for none) is one that {@code m}'s defaults are
     * resolved under: not its default (auto), which is the image's own choice.
     */
    private static boolean pins(MethodSpec m, String model) {
        return m.param(DenoiseJob.NOISE_MODEL) != null && model != null && !DenoiseJob.autoModel(m, model);
    }

    private void resetToDefaults() {
        MethodSpec m = method;
        final Map<String, String> set = defaultsUnder(m, onEdtGet(() -> rowValue(DenoiseJob.NOISE_MODEL)), null);
        onEdt(() -> {
            setFields(set);
            strengthLine.setText("Strength: from the noise estimate");
        });
    }

    /** The value of the field {@code key}, or null when the method has none. On the EDT. */
    private String rowValue(String key) {
        for (ParamRow r : rows) {
            if (key.equals(r.spec.key)) return r.value();
        }
        return null;
    }

    /** Every denoiser tuned on the slice on screen and ranked; the expected best selected with its tuned values. */
    private void suggest() {
        Pixels here = slice();
        String[] ranked;
        try (CancelWatch w = watch("Suggest (tuning every denoiser)")) {
            ranked = NativeBridge.rank(here.data, here.dims, null, w.job);
        }
        IJ.log("DenoiseKit: denoisers ranked by the self-supervised loss on " + imp.getTitle() + " (lower is better):");
        for (int i = 0; i < ranked.length; i++) {
            String[] idLoss = ranked[i].split(" ", 3);
            if (idLoss.length < 2) continue;
            IJ.log(String.format("  %s %-22s loss %s", i == 0 ? "*" : " ", idLoss[0],
                    DenoiseCommand.fmt(Double.parseDouble(idLoss[1]))));
        }
        final String[] best = ranked[0].split(" ", 3);
        final Map<String, String> values = best.length > 2 ? DenoiseCommand.parseOptions(best[2]) : null;
        onEdt(() -> select(best[0], values, "Strength: self-supervised (Suggest ranked " + ranked.length
                + " denoisers; the ranking is in the Log)"));
    }

    /** Apply: the job runs on the worker; its line is recorded once it succeeded. */
    private void applyNow() {
        final Settings s = settings();
        if (s.problem != null) {
            progressText.setText("Fix " + s.problem);
            progressText.setForeground(WARN);
            return;
        }
        final boolean oneSlice = imp.getStackSize() > 1 && DenoiseJob.SLICE.equals(scope.getSelectedItem());
        final boolean place = inPlace.isSelected(), toFloat = floatResult.isSelected();
        remember();
        submit("Denoising", () -> {
            complete(s);
            DenoiseJob job = new DenoiseJob(imp, s.method, s.backend, s.keys, s.values, s.inputs, s.titles,
                    oneSlice, place, toFloat, s.nanMasked);
            String problem = job.check();
            if (problem != null) throw new DenoiseKitException("InvalidInput", problem);
            final long t0 = System.nanoTime();
            DenoiseJob.Outcome o = DenoiseCommand.runLocked(job, progressTo("Denoising", t0));
            if (Recorder.record) {
                // The line runs on the macro's current image, which the recorder follows as
                // windows are activated: the panel, not an image window, never makes its
                // image current, and the result's window, shown, was recorded as current.
                Recorder.record("selectWindow", DenoiseJob.macroString(imp.getTitle()));
                Recorder.record("run", "Denoise...", DenoiseJob.macroString(job.options()));
            }
            final String done = "Done in " + DenoiseCommand.fmt(o.ms / 1000) + " s: " + o.result.getTitle()
                    + (o.warning.isEmpty() ? "" : " (residual warning in the Log)");
            onEdt(() -> progressText.setText(done));
        });
    }

    // ---- ImageJ events ----

    @Override
    public void imageOpened(ImagePlus i) {
        if (closed) return;
        onEdt(this::refreshImageInputs);
    }

    @Override
    public void imageClosed(ImagePlus i) {
        if (i == imp) onEdt(this::dispose);
        else onEdt(this::refreshImageInputs);
    }

    @Override
    public void imageUpdated(ImagePlus i) {
        // A new slice, channel or frame on screen, or pixels changed by another command.
        if (i == imp && !closed) onEdt(this::changed);
    }

    @Override
    public void roiModified(ImagePlus i, int id) {
        if (i == imp && !closed) onEdt(this::changed);
    }

    private void refreshImageInputs() {
        for (JComboBox<String> box : imageInputs) {
            Object sel = box.getSelectedItem();
            box.removeAllItems();
            for (String t : imageChoices()) box.addItem(t);
            box.setSelectedItem(sel);
        }
    }

    private String[] imageChoices() {
        List<String> t = new ArrayList<String>();
        t.add(DenoiseJob.NONE);
        int[] ids = WindowManager.getIDList();
        if (ids != null) {
            for (int id : ids) {
                ImagePlus other = WindowManager.getImage(id);
                if (other != null && other != imp) t.add(other.getTitle());
            }
        }
        return t.toArray(new String[0]);
    }

    private void shutdown() {
        if (closed) return;
        previewer.stop();
        stopTask();
        tasks.shutdownNow();
        ImagePlus.removeImageListener(this);
        Roi.removeRoiListener(this);
        synchronized (OPEN) {
            if (OPEN.get(imp) == this) OPEN.remove(imp);
        }
    }

    // ---- helpers ----

    static void onEdt(Runnable r) {
        if (SwingUtilities.isEventDispatchThread()) r.run();
        else SwingUtilities.invokeLater(r);
    }

    private interface Get<T> {
        T get();
    }

    private static <T> T onEdtGet(final Get<T> g) {
        if (SwingUtilities.isEventDispatchThread()) return g.get();
        final List<T> out = new ArrayList<T>();
        try {
            SwingUtilities.invokeAndWait(() -> out.add(g.get()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DenoiseKitException("Cancelled", "cancelled");
        } catch (java.lang.reflect.InvocationTargetException e) {
            throw new IllegalStateException(e.getCause());
        }
        return out.get(0);
    }

    private static java.util.concurrent.ThreadFactory daemon(final String name) {
        return r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        };
    }

    /** Text wrapped for a Swing label (HTML), at about {@code width} characters. */
    static String htmlWrap(String text, int width) {
        String esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
        StringBuilder out = new StringBuilder("<html>");
        int line = 0;
        for (String word : esc.split(" ")) {
            if (line > 0 && line + word.length() > width) {
                out.append("<br>");
                line = 0;
            } else if (line > 0) {
                out.append(' ');
                line++;
            }
            out.append(word);
            line += word.length();
        }
        return out.append("</html>").toString();
    }
}
